import { performance } from 'node:perf_hooks'
import type { Database, Statement } from 'better-sqlite3'
import { StoreCommitError } from './errors.js'

export interface CommitInfo {
  /** writes (store calls) made durable by this commit */
  batchSize: number
  /** time spent in COMMIT, i.e. writing (and with synchronous=full, syncing) the WAL */
  durationSeconds: number
}

export interface GroupCommitOptions {
  /** commit as soon as this many writes are pending, without waiting for the event loop */
  maxBatch: number
  /** 0: commit when the event loop turns (setImmediate); n > 0: at most n ms after the first write */
  commitIntervalMs: number
  /** runs right before COMMIT, inside the batch; throwing fails the commit (the batch rolls back) */
  beforeCommit?: () => void
  onCommit?: (info: CommitInfo) => void
  /** runs after the rollback, before the batch's promises reject: in-memory state must be rebuilt */
  onCommitError?: (error: StoreCommitError) => void
}

/**
 * Told once a write is durable (err null) or failed: for callers that take no promise per write
 * (the patched aedes's publish state is one). An object with a method, not a callback: no closure
 * per message.
 */
export interface StoredListener {
  stored(err: Error | null): void
}

/**
 * Group commit. Each write runs synchronously, at once, inside the batch's open transaction (so
 * reads on this connection see it immediately) and, if it is made of several statements, in its
 * own savepoint (so a write that throws is undone alone and rejects alone). Its promise settles
 * only when the COMMIT containing it returns: resolved if it committed, rejected with a
 * StoreCommitError if the commit failed, in which case the whole batch was rolled back. Callers
 * that acknowledge to MQTT clients after that promise never acknowledge anything that is not on
 * disk, yet pay one commit per batch rather than one per message.
 */
export class GroupCommit {
  readonly #db: Database
  readonly #options: GroupCommitOptions
  readonly #begin: Statement
  readonly #commit: Statement
  readonly #rollback: Statement
  readonly #savepoint: Statement
  readonly #release: Statement
  readonly #rollbackToSavepoint: Statement
  #open = false
  #waiters: Array<() => void> = []
  #rejecters: Array<(err: Error) => void> = []
  #listeners: Array<(err?: Error) => void> = []
  /** writes of the open batch whose callers hear through notify() */
  #notified: StoredListener[] = []
  #immediate: NodeJS.Immediate | undefined
  #timeout: NodeJS.Timeout | undefined

  constructor(db: Database, options: GroupCommitOptions) {
    this.#db = db
    this.#options = options
    this.#begin = db.prepare('BEGIN IMMEDIATE')
    this.#commit = db.prepare('COMMIT')
    this.#rollback = db.prepare('ROLLBACK')
    this.#savepoint = db.prepare('SAVEPOINT write')
    this.#release = db.prepare('RELEASE write')
    this.#rollbackToSavepoint = db.prepare('ROLLBACK TO write')
  }

  /** writes applied but not committed yet */
  get pending(): number {
    return this.#waiters.length + this.#notified.length
  }

  /**
   * Applies `work` now, in the open batch; the promise settles after that batch's COMMIT.
   * `atomic` wraps it in a savepoint, needed only when it makes several writes: a single SQLite
   * statement that fails is already undone alone (and a savepoint costs about 10% of throughput).
   */
  run<T>(work: () => T, atomic = true): Promise<T> {
    if (!this.#open) this.#openBatch()
    if (atomic) this.#savepoint.run()
    let result: T
    try {
      result = work()
    } catch (err) {
      if (atomic) {
        this.#rollbackToSavepoint.run()
        this.#release.run()
      }
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
    if (atomic) this.#release.run()
    const promise = new Promise<T>((resolve, reject) => {
      this.#waiters.push(() => resolve(result))
      this.#rejecters.push(reject)
    })
    if (this.pending >= this.#options.maxBatch) this.commitNow()
    return promise
  }

  /**
   * Counts a write applied with apply() in the open batch, whose caller hears of its COMMIT
   * through `listener` rather than a promise. The listener runs inside commitNow, after the
   * batch's state is reset: it may write again (into the next batch).
   */
  notify(listener: StoredListener): void {
    if (!this.#open) this.#openBatch()
    this.#notified.push(listener)
    if (this.pending >= this.#options.maxBatch) this.commitNow()
  }

  /**
   * Applies `work` now, in the open batch (opened if needed), without a promise of its own: for a
   * write whose caller learns of the commit another way (join). Throws what `work` throws.
   */
  apply<T>(work: () => T): T {
    if (!this.#open) this.#openBatch()
    return work()
  }

  /** Settles with the open batch's COMMIT (opening a batch if none is). */
  join(): Promise<void> {
    if (!this.#open) this.#openBatch()
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push(resolve)
      this.#rejecters.push(reject)
    })
  }

  /** Resolves once nothing written so far is uncommitted, whether that commit succeeded or not. */
  settled(): Promise<void> {
    if (!this.#open) return Promise.resolve()
    return new Promise((resolve) => this.#listeners.push(() => resolve()))
  }

  /** Commits the open batch now. Rejects if that commit fails. */
  flush(): Promise<void> {
    if (!this.#open) return Promise.resolve()
    const done = new Promise<void>((resolve, reject) => {
      this.#listeners.push((err) => (err ? reject(err) : resolve()))
    })
    this.commitNow()
    return done
  }

  /** Synchronous commit of the open batch; the outcome is delivered to the batch's promises. */
  commitNow(): void {
    // each handle with its own clear function: clearImmediate on a Timeout corrupts Node's count
    if (this.#immediate !== undefined) clearImmediate(this.#immediate)
    if (this.#timeout !== undefined) clearTimeout(this.#timeout)
    this.#immediate = undefined
    this.#timeout = undefined
    if (!this.#open) return
    // first, while the batch is still the open one: its last writes belong to this commit
    let failure: unknown
    try {
      this.#options.beforeCommit?.()
    } catch (err) {
      failure = err ?? new Error('beforeCommit failed')
    }
    const waiters = this.#waiters
    const rejecters = this.#rejecters
    const listeners = this.#listeners
    const notified = this.#notified
    this.#waiters = []
    this.#rejecters = []
    this.#listeners = []
    this.#notified = []
    const batchSize = waiters.length + notified.length
    this.#open = false
    const started = performance.now()
    try {
      if (failure !== undefined) throw failure
      this.#commit.run()
    } catch (cause) {
      // SQLite keeps the transaction open after a failed COMMIT (e.g. SQLITE_BUSY, a deferred
      // constraint): roll it back so that memory and disk agree on "none of it happened".
      if (this.#db.inTransaction) this.#rollback.run()
      const error = new StoreCommitError(batchSize, { cause })
      this.#options.onCommitError?.(error)
      for (const reject of rejecters) reject(error)
      for (const listener of notified) listener.stored(error)
      for (const listener of listeners) listener(error)
      return
    }
    const durationSeconds = (performance.now() - started) / 1000
    for (const resolve of waiters) resolve()
    for (const listener of notified) listener.stored(null)
    for (const listener of listeners) listener()
    try {
      this.#options.onCommit?.({ batchSize, durationSeconds })
    } catch {
      // an observer's failure must not turn a durable commit into an error
    }
  }

  #openBatch(): void {
    this.#begin.run()
    this.#open = true
    const { commitIntervalMs } = this.#options
    if (commitIntervalMs > 0) this.#timeout = setTimeout(() => this.commitNow(), commitIntervalMs)
    else this.#immediate = setImmediate(() => this.commitNow())
  }
}
