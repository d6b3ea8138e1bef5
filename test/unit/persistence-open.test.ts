import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, test } from 'vitest'
import {
  SchemaTooNewError,
  StoreCorruptError,
  StoreOpenError,
  StoreOptionsError,
} from '../../src/persistence/errors.js'
import { LATEST_SCHEMA_VERSION, migrate, readSchemaVersion, type Migration } from '../../src/persistence/schema.js'
import { SqlitePersistence } from '../../src/persistence/sqlite-persistence.js'
import { openDatabase, WAL_AUTOCHECKPOINT_PAGES } from '../../src/persistence/open-database.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mqlite-open-'))
  dirs.push(dir)
  return dir
}

async function openAt(path: string): Promise<SqlitePersistence> {
  const store = new SqlitePersistence({ path })
  await store.setup({ id: 'b', counter: 0 })
  return store
}

describe('opening the store', () => {
  test('checkpoints its write-ahead log every WAL_AUTOCHECKPOINT_PAGES pages, and bounds the log file', () => {
    const db = openDatabase({ path: join(tempDir(), 'mqlite.db'), synchronous: 'normal', busyTimeoutMs: 1000 })
    try {
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(WAL_AUTOCHECKPOINT_PAGES)
      expect(db.pragma('journal_size_limit', { simple: true })).toBeGreaterThanOrEqual(WAL_AUTOCHECKPOINT_PAGES * 4096)
    } finally {
      db.close()
    }
  })

  test('creates the missing parent directories, a WAL database and the current schema', async () => {
    const path = join(tempDir(), 'nested', 'deeper', 'mqlite.db')
    const store = await openAt(path)
    await store.close()
    expect(existsSync(path)).toBe(true)
    const db = new Database(path)
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(readSchemaVersion(db)).toBe(LATEST_SCHEMA_VERSION)
    db.close()
  })

  test('a file that is not a database is a StoreCorruptError at setup', async () => {
    const path = join(tempDir(), 'garbage.db')
    writeFileSync(path, randomBytes(8192))
    const error = await openAt(path).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(StoreCorruptError)
    expect(error).toMatchObject({ code: 'ERR_STORE_CORRUPT', path })
    expect((error as Error).message).toMatch(/not a valid SQLite database/)
  })

  test('a path below a regular file (unwritable location) is a StoreOpenError at setup', async () => {
    const file = join(tempDir(), 'a-file')
    writeFileSync(file, 'not a directory')
    const error = await openAt(join(file, 'sub', 'mqlite.db')).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(StoreOpenError)
    expect(error).toMatchObject({ code: 'ERR_STORE_OPEN' })
    expect((error as Error).message).toMatch(/cannot create its directory/)
  })

  test('a directory in place of the database file is a StoreOpenError at setup', async () => {
    const path = join(tempDir(), 'is-a-dir.db')
    mkdirSync(path)
    await expect(openAt(path)).rejects.toBeInstanceOf(StoreOpenError)
  })

  test('a schema newer than this mqlite knows is refused before anything is written', async () => {
    const path = join(tempDir(), 'future.db')
    await (await openAt(path)).close()
    const db = new Database(path)
    db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(LATEST_SCHEMA_VERSION + 5, Date.now())
    db.close()
    const error = await openAt(path).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(SchemaTooNewError)
    expect(error).toMatchObject({ code: 'ERR_STORE_SCHEMA_TOO_NEW', found: LATEST_SCHEMA_VERSION + 5, supported: LATEST_SCHEMA_VERSION })
    expect((error as Error).message).toMatch(/upgrade mqlite/)
  })

  test('setup is accepted by aedes (native async) and only once', async () => {
    const store = new SqlitePersistence(':memory:')
    expect(store.setup.constructor.name).toBe('AsyncFunction')
    await store.setup({ id: 'b' })
    await expect(store.setup({ id: 'b' })).rejects.toMatchObject({ code: 'ERR_STORE_CLOSED' })
    await store.close()
  })

  test('invalid options are all reported in one StoreOptionsError', () => {
    const create = () =>
      new SqlitePersistence({
        path: '',
        synchronous: 'off' as 'full',
        maxBatch: 0,
        maxQueuedMessages: -1,
        queuePolicy: 'lifo' as 'refuse',
      })
    expect(create).toThrow(StoreOptionsError)
    try {
      create()
    } catch (err) {
      expect((err as StoreOptionsError).problems).toHaveLength(5)
    }
  })
})

describe('migrations', () => {
  const steps: Migration[] = [
    { version: 1, description: 'one', up: 'CREATE TABLE one (x INTEGER)' },
    { version: 2, description: 'two', up: 'ALTER TABLE one ADD COLUMN y INTEGER' },
  ]

  test('apply in order, once, and record each version', () => {
    const db = new Database(':memory:')
    expect(migrate(db, 'mem', [steps[1] as Migration, steps[0] as Migration])).toEqual([1, 2])
    expect(readSchemaVersion(db)).toBe(2)
    expect(migrate(db, 'mem', steps)).toEqual([])
    db.prepare('INSERT INTO one (x, y) VALUES (1, 2)').run()
    db.close()
  })

  test('a database at an older version gets only the newer steps', () => {
    const db = new Database(':memory:')
    migrate(db, 'mem', steps.slice(0, 1))
    expect(migrate(db, 'mem', steps)).toEqual([2])
    db.close()
  })

  test('a failing step leaves the previous version intact', () => {
    const db = new Database(':memory:')
    migrate(db, 'mem', steps.slice(0, 1))
    const broken: Migration = { version: 2, description: 'broken', up: 'CREATE TABLE two (a); SELECT * FROM nowhere' }
    expect(() => migrate(db, 'mem', [steps[0] as Migration, broken])).toThrow(/no such table/)
    expect(readSchemaVersion(db)).toBe(1)
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'two'").get()).toBeUndefined()
    db.close()
  })

  test('a newer recorded version throws SchemaTooNewError', () => {
    const db = new Database(':memory:')
    migrate(db, 'mem', steps)
    expect(() => migrate(db, 'mem', steps.slice(0, 1))).toThrow(SchemaTooNewError)
    db.close()
  })
})
