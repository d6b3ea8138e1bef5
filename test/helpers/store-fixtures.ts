import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import type { SqlitePersistence } from '../../src/persistence/sqlite-persistence.js'

/**
 * Database files and stores for one test file: `dbPath()` gives a fresh file in its own temporary
 * directory, `track(store)` closes the store after the test; both are cleaned up after each test.
 */
export function storeFixtures() {
  const dirs: string[] = []
  const stores: SqlitePersistence[] = []
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()))
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  })
  return {
    dbPath(name = 'store.db'): string {
      const dir = mkdtempSync(join(tmpdir(), 'mqlite-store-'))
      dirs.push(dir)
      return join(dir, name)
    },
    track(store: SqlitePersistence): SqlitePersistence {
      stores.push(store)
      return store
    },
  }
}
