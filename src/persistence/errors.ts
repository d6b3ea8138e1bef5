import { MqliteError } from '../errors.js'

// Named store errors with stable codes: the broker's start-up path and its PUBACK path tell them
// apart by class or `code`, never by message text.

/** The database file could not be opened or created (bad path, permissions, not a directory). */
export class StoreOpenError extends MqliteError {
  readonly path: string
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('ERR_STORE_OPEN', `cannot open the SQLite store at ${path}: ${message}`, options)
    this.path = path
  }
}

/** The file exists but is not a readable SQLite database. */
export class StoreCorruptError extends MqliteError {
  readonly path: string
  constructor(path: string, options?: { cause?: unknown }) {
    super(
      'ERR_STORE_CORRUPT',
      `${path} is not a valid SQLite database (corrupt, or not a database file); ` +
        'move it aside to start with an empty store',
      options,
    )
    this.path = path
  }
}

/** The database was written by a newer mqlite: running an older one on it could lose data. */
export class SchemaTooNewError extends MqliteError {
  readonly found: number
  readonly supported: number
  constructor(path: string, found: number, supported: number) {
    super(
      'ERR_STORE_SCHEMA_TOO_NEW',
      `${path} has store schema version ${found}, newer than the ${supported} this mqlite knows; ` +
        'upgrade mqlite (a downgrade cannot read this database)',
    )
    this.found = found
    this.supported = supported
  }
}

/** Invalid store options; every problem is listed. */
export class StoreOptionsError extends MqliteError {
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super('ERR_STORE_OPTIONS', `invalid store options:\n  - ${problems.join('\n  - ')}`)
    this.problems = problems
  }
}

/** The transaction holding a write could not be committed; nothing of that batch is on disk. */
export class StoreCommitError extends MqliteError {
  readonly batchSize: number
  constructor(batchSize: number, options: { cause: unknown }) {
    const reason = options.cause instanceof Error ? options.cause.message : String(options.cause)
    super('ERR_STORE_COMMIT', `commit of a batch of ${batchSize} store writes failed: ${reason}`, options)
    this.batchSize = batchSize
  }
}

/** A call arrived before setup() or after close(). */
export class StoreClosedError extends MqliteError {
  constructor(state: string) {
    super('ERR_STORE_CLOSED', `the store is ${state}`)
  }
}

/** A session's offline queue is at its limit and the policy is `refuse`. */
export class QueueFullError extends MqliteError {
  readonly clientId: string
  constructor(clientId: string, limit: string) {
    super('ERR_QUEUE_FULL', `offline queue of client ${JSON.stringify(clientId)} is full (${limit})`)
    this.clientId = clientId
  }
}

/**
 * A packet the aedes contract looks up is not stored. The message text matches the memory store's,
 * which aedes-facing code (src/broker/hardening.ts) recognises.
 */
export class NoSuchPacketError extends MqliteError {
  constructor() {
    super('ERR_NO_SUCH_PACKET', 'no such packet')
  }
}

/** The store's server (Redis in cluster mode) cannot be reached: nothing was written. */
export class StoreUnavailableError extends MqliteError {
  constructor(server: string, message = `${server} is unreachable; nothing was stored`) {
    super('ERR_STORE_UNAVAILABLE', message)
  }
}
