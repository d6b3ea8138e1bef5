import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ConfigInput } from '../../src/config/schema.js'

type StoreInput = NonNullable<ConfigInput['store']>

export interface StoreCase {
  name: 'memory' | 'sqlite'
  /** A fresh store config (a new database file each call for SQLite). */
  store: () => StoreInput
}

/** Both stores, for `describe.each`: every protocol test runs against each. */
export function storeConfigs(): StoreCase[] {
  return [
    { name: 'memory', store: () => ({ type: 'memory' }) },
    { name: 'sqlite', store: () => ({ type: 'sqlite', path: join(tempDir(), 'mqlite.db') }) },
  ]
}

/** A new directory under the run's temporary directory, which test/global-setup.ts removes. */
export function tempDir(prefix = 'mqlite-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}
