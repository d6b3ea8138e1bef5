import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import type { Database } from 'better-sqlite3'
import { StoreCorruptError, StoreOpenError } from './errors.js'
import { migrate } from './schema.js'

export type SynchronousMode = 'normal' | 'full'

export interface OpenDatabaseOptions {
  path: string
  synchronous: SynchronousMode
  busyTimeoutMs: number
}

const CORRUPT_CODES = new Set(['SQLITE_NOTADB', 'SQLITE_CORRUPT'])

/**
 * Pages the write-ahead log may hold before the commit that crosses it checkpoints (copies them
 * into the database file and, under synchronous=normal, syncs both). SQLite's default of 1,000
 * (4 MiB) checkpointed every few thousand queued copies, inside a commit the publishers' PUBACKs
 * wait for; 8,000 (32 MiB) cut the broker's CPU per message by 10-16% on the offline-session
 * benchmarks. The log keeps its largest size on disk, bounded by WAL_SIZE_LIMIT_BYTES.
 */
export const WAL_AUTOCHECKPOINT_PAGES = 8000
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024

/**
 * Opens (creating the file and its directory if needed) and migrates the database. Every failure
 * is one of the store's named errors, so a bad path or a damaged file stops the broker at start
 * with a message that says which.
 */
export function openDatabase({ path, synchronous, busyTimeoutMs }: OpenDatabaseOptions): Database {
  const inMemory = path === ':memory:'
  const shownPath = inMemory ? path : resolve(path)
  if (!inMemory) {
    try {
      mkdirSync(dirname(shownPath), { recursive: true })
    } catch (err) {
      throw new StoreOpenError(shownPath, `cannot create its directory (${errorText(err)})`, { cause: err })
    }
  }
  let db: Database
  try {
    db = new BetterSqlite3(path)
  } catch (err) {
    throw new StoreOpenError(shownPath, errorText(err), { cause: err })
  }
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`)
    // WAL: readers never block the writer and a commit is one append to the log. NORMAL syncs the
    // log only at checkpoints (a process crash loses nothing committed, power loss may lose the
    // last commits); FULL syncs it at every commit (survives power loss, slower).
    if (!inMemory) {
      const mode = db.pragma('journal_mode = WAL', { simple: true })
      if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL is required`)
    }
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`)
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`)
    db.pragma('foreign_keys = ON')
    // Statement journals (a multi-row INSERT, a savepoint) in memory rather than in temporary
    // files: they only serve rollbacks inside the open transaction, never crash recovery.
    db.pragma('temp_store = MEMORY')
    migrate(db, shownPath)
    // A write probe: a read-only file or directory must fail now, not at the first PUBACK.
    db.exec('BEGIN IMMEDIATE; ROLLBACK')
    return db
  } catch (err) {
    db.close()
    if (isSqliteError(err) && CORRUPT_CODES.has(err.code)) throw new StoreCorruptError(shownPath, { cause: err })
    if (isSqliteError(err) && /^SQLITE_(CANTOPEN|READONLY|IOERR|PERM|FULL)/.test(err.code)) {
      throw new StoreOpenError(shownPath, errorText(err), { cause: err })
    }
    throw err
  }
}

function isSqliteError(err: unknown): err is Error & { code: string } {
  return err instanceof BetterSqlite3.SqliteError
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
