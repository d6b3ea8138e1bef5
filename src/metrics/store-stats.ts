import type { Readable } from 'node:stream'

/**
 * What a store reports about its contents when asked (once per scrape or $SYS tick, never per
 * message). The SQLite store keeps these as running counts, so asking is cheap.
 */
export interface StoreStats {
  /** retained messages */
  retained: number
  /** subscriptions of persistent sessions (connected or not) */
  subscriptions: number
  /** messages waiting in session queues, not yet sent */
  queued: number
  /** messages sent to a client and not yet acknowledged (QoS 1/2, PUBREL included) */
  inflight: number
  /** size of the database on disk */
  dbBytes?: number
  /** sessions the store holds: every connected client's, plus persistent ones kept offline */
  sessions?: number
  /**
   * QoS 1 messages for a connected session held in memory (the SQLite store's ack window), since
   * start: `acknowledged` never needed a write, `written` went to disk after all
   */
  held?: { acknowledged: number; written: number }
}

/** A store that can report its contents. */
export interface StatsSource {
  stats(): StoreStats | Promise<StoreStats>
}

/** The part of the contract every aedes store has, used to count retained messages when no stats() exists. */
interface RetainedSource {
  createRetainedStreamCombi(patterns: string[]): Readable
}

/** What the registry and $SYS can know about a store; absent fields are not published. */
export type PartialStoreStats = Partial<StoreStats>

export function hasStats(store: unknown): store is StatsSource {
  return typeof (store as Partial<StatsSource> | null)?.stats === 'function'
}

/**
 * Reads a store's figures. A store with `stats()` answers for itself. Otherwise (the in-memory
 * store) only the retained count can be derived, by walking its retained set: that store is meant
 * for tests and benchmarks, where the set is small. Its queue and subscription figures are not
 * reported rather than guessed.
 */
export async function readStoreStats(store: unknown): Promise<PartialStoreStats> {
  if (hasStats(store)) return await store.stats()
  const source = store as Partial<RetainedSource> | null
  if (typeof source?.createRetainedStreamCombi !== 'function') return {}
  let retained = 0
  for await (const _ of source.createRetainedStreamCombi(['#'])) retained++
  return { retained }
}
