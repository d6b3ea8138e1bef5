import type { CommitInfo } from './group-commit.js'
import { StoreOptionsError } from './errors.js'
import type { SynchronousMode } from './open-database.js'
import type { QueuePolicy } from './queue-accounting.js'

/** Why messages left an offline queue without being delivered. */
export type DropReason = 'queue_full' | 'expired'

/** The subset of a pino logger the store uses. */
export interface StoreLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** The store's default ackWindowMs. */
export const ACK_WINDOW_MS_DEFAULT = 20

export interface SqlitePersistenceOptions {
  /** database file, or ':memory:' (tests); the parent directory is created if missing */
  path: string
  /** 'normal' (default): survives a process crash; 'full': also survives power loss */
  synchronous?: SynchronousMode
  /** per-session limit of queued + in-flight messages; 0 or absent = unlimited */
  maxQueuedMessages?: number
  /** per-session limit of queued payload bytes; 0 or absent = unlimited */
  maxQueuedBytes?: number
  /** what a full session queue does with a new message (default 'drop-oldest') */
  queuePolicy?: QueuePolicy
  /**
   * 0 (default): commit when the event loop turns; n: at most n ms after a batch's first write
   * (bigger batches, but every write and read waiting on that batch waits up to n ms)
   */
  commitIntervalMs?: number
  /** commit at once when this many writes are pending (default 1000) */
  maxBatch?: number
  /**
   * How long a QoS 1 message queued for one connected session may wait in memory for that
   * session's PUBACK before it is written (default 20 ms; 0: written at once). Acknowledged in
   * time, it is never written; its publisher's PUBACK waits for either.
   */
  ackWindowMs?: number
  /** how long a write waits for a lock held by another connection (default 5000 ms) */
  busyTimeoutMs?: number
  /** rows per read when streaming a session's queue (default 256) */
  pageSize?: number
  logger?: StoreLogger
  /** called after every successful commit (for metrics) */
  onCommit?: (info: CommitInfo) => void
  /** called when messages leave a session queue undelivered, after that removal committed */
  onDrop?: (reason: DropReason, count: number, clientId: string) => void
}

export interface ResolvedStoreOptions {
  readonly path: string
  readonly synchronous: SynchronousMode
  readonly maxQueuedMessages: number
  readonly maxQueuedBytes: number
  readonly queuePolicy: QueuePolicy
  readonly commitIntervalMs: number
  readonly maxBatch: number
  readonly ackWindowMs: number
  readonly busyTimeoutMs: number
  readonly pageSize: number
  readonly logger: StoreLogger | undefined
  readonly onCommit: ((info: CommitInfo) => void) | undefined
  readonly onDrop: ((reason: DropReason, count: number, clientId: string) => void) | undefined
}

/** Validates once, reports every problem in one StoreOptionsError, returns a frozen result. */
export function resolveStoreOptions(input: string | SqlitePersistenceOptions): ResolvedStoreOptions {
  const opts: SqlitePersistenceOptions = typeof input === 'string' ? { path: input } : input
  const problems: string[] = []
  const count = (name: keyof SqlitePersistenceOptions, fallback: number, min: number): number => {
    const value = opts[name] ?? fallback
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      problems.push(`${name} must be an integer >= ${min} (got ${String(value)})`)
      return fallback
    }
    return value
  }
  if (typeof opts.path !== 'string' || opts.path.length === 0) problems.push('path must be a non-empty string')
  const synchronous = opts.synchronous ?? 'normal'
  if (synchronous !== 'normal' && synchronous !== 'full') {
    problems.push(`synchronous must be 'normal' or 'full' (got ${String(synchronous)})`)
  }
  const queuePolicy = opts.queuePolicy ?? 'drop-oldest'
  if (queuePolicy !== 'drop-oldest' && queuePolicy !== 'refuse') {
    problems.push(`queuePolicy must be 'drop-oldest' or 'refuse' (got ${String(queuePolicy)})`)
  }
  const resolved: ResolvedStoreOptions = {
    path: opts.path,
    synchronous,
    queuePolicy,
    maxQueuedMessages: count('maxQueuedMessages', 0, 0),
    maxQueuedBytes: count('maxQueuedBytes', 0, 0),
    commitIntervalMs: count('commitIntervalMs', 0, 0),
    maxBatch: count('maxBatch', 1000, 1),
    ackWindowMs: count('ackWindowMs', ACK_WINDOW_MS_DEFAULT, 0),
    busyTimeoutMs: count('busyTimeoutMs', 5000, 0),
    pageSize: count('pageSize', 256, 1),
    logger: opts.logger,
    onCommit: opts.onCommit,
    onDrop: opts.onDrop,
  }
  if (problems.length > 0) throw new StoreOptionsError(problems)
  return Object.freeze(resolved)
}
