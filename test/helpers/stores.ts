import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ConfigInput } from '../../src/config/schema.js'

type StoreInput = NonNullable<ConfigInput['store']>

export interface StoreCase {
  name: 'memory' | 'sqlite'
  /** A fresh store config (a new database file each call for SQLite). */
  store: () => StoreInput
}

const tempDirs: string[] = []

/** Both stores, for `describe.each`: every protocol test runs against each. */
export function storeConfigs(): StoreCase[] {
  return [
    { name: 'memory', store: () => ({ type: 'memory' }) },
    { name: 'sqlite', store: () => ({ type: 'sqlite', path: join(tempDir(), 'mqlite.db') }) },
  ]
}

export function tempDir(prefix = 'mqlite-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})
