import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
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

/**
 * Makes every commit that stores a retained message on topic `poison` fail: a deferred foreign
 * key is only checked at COMMIT, so the whole batch fails, whatever else it holds.
 */
export function poisonRetainedTopic(path: string): void {
  const admin = new Database(path)
  admin.exec(`
    CREATE TABLE poison_parent (id INTEGER PRIMARY KEY);
    CREATE TABLE poison (parent INTEGER REFERENCES poison_parent (id) DEFERRABLE INITIALLY DEFERRED);
    CREATE TRIGGER poison_retained AFTER INSERT ON retained WHEN NEW.topic = 'poison'
    BEGIN INSERT INTO poison VALUES (1); END;
  `)
  admin.close()
}

/** Rows in `table` of a store's file, read by a connection of its own (committed data only). */
export function rowsOnDisk(path: string, table: string): number {
  return countWith(path, `SELECT COUNT(*) AS n FROM ${table}`)
}

/** Copies queued in a store's file: outgoing rows plus the copies in runs (queued_runs). */
export function queuedCopiesOnDisk(path: string): number {
  return countWith(path, 'SELECT (SELECT COUNT(*) FROM outgoing) + (SELECT COALESCE(SUM(copies), 0) FROM queued_runs) AS n')
}

function countWith(path: string, sql: string): number {
  const reader = new Database(path, { readonly: true })
  try {
    return (reader.prepare(sql).get() as { n: number }).n
  } finally {
    reader.close()
  }
}
