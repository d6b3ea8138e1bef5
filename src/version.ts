import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let cached: string | undefined

/**
 * mqlite's version from its package.json, found by walking up from this file: the same code runs
 * from `src/` (tsx) and from `dist/src/` (built), which sit at different depths.
 */
export function mqliteVersion(): string {
  if (cached !== undefined) return cached
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'mqlite' && typeof pkg.version === 'string') return (cached = pkg.version)
    } catch {
      // no package.json here: keep walking up
    }
    const parent = dirname(dir)
    if (parent === dir) return (cached = 'unknown')
    dir = parent
  }
}
