import { BATCH_SIZE_BUCKETS, LATENCY_BUCKETS, createFastHistogram, type FastHistogram } from './fast-histogram.js'

/** Why a PUBLISH (or one subscriber's copy of it) was not delivered. */
export const DROP_REASONS = ['queue_full', 'expired', 'too_large', 'no_subscribers', 'not_authorized'] as const
export type DropReason = (typeof DROP_REASONS)[number]

/** How a connection attempt ended: the CONNACK code, or no CONNACK at all. */
export const CONNECT_RESULTS = ['accepted', 'bad_credentials', 'not_authorized', 'refused', 'failed'] as const
export type ConnectResult = (typeof CONNECT_RESULTS)[number]

const DROP_INDEX: Readonly<Record<DropReason, number>> = Object.freeze({
  queue_full: 0,
  expired: 1,
  too_large: 2,
  no_subscribers: 3,
  not_authorized: 4,
})

/** The byte counters of a transport socket (net.Socket and tls.TLSSocket keep them). */
export interface CountingSocket {
  readonly bytesRead?: number
  readonly bytesWritten?: number
}

/** Per-listener connection accounting. */
export interface ListenerStats {
  readonly name: string
  /** connections open now (TCP level, CONNECT or not) */
  open: number
  /** bytes of connections that have closed; open ones are read from their sockets when scraped */
  closedBytesIn: number
  closedBytesOut: number
  readonly sockets: Set<CountingSocket>
  /** indexed like CONNECT_RESULTS */
  readonly attempts: Float64Array
}

/**
 * The broker's counters as plain numbers. The hot path (one PUBLISH in, one PUBLISH out) only
 * increments typed-array slots chosen by QoS or reason index: no label lookup, no allocation.
 * The Prometheus registry and the $SYS publisher read these when they need to.
 */
export interface BrokerStats {
  /** PUBLISH packets received from clients, indexed by QoS */
  readonly received: Float64Array
  /** PUBLISH packets handed to a client connection, indexed by delivered QoS */
  readonly sent: Float64Array
  /** indexed like DROP_REASONS */
  readonly dropped: Float64Array
  /** PUBLISH in to PUBLISH out, seconds, live deliveries */
  readonly latency: FastHistogram
  readonly commitDuration: FastHistogram
  readonly commitBatchSize: FastHistogram
  readonly listeners: ReadonlyMap<string, ListenerStats>
  /** Client ids of persistent sessions whose client is not connected (tracked from broker events). */
  readonly offlineSessions: Set<string>
  listener(name: string): ListenerStats
  /** Counts `count` messages (default 1) not delivered for `reason`. */
  drop(reason: DropReason, count?: number): void
  observeCommit(batchSize: number, durationSeconds: number): void
  bytesIn(listener: ListenerStats): number
  bytesOut(listener: ListenerStats): number
}

export function createBrokerStats(): BrokerStats {
  const received = new Float64Array(3)
  const sent = new Float64Array(3)
  const dropped = new Float64Array(DROP_REASONS.length)
  const latency = createFastHistogram(LATENCY_BUCKETS)
  const commitDuration = createFastHistogram(LATENCY_BUCKETS)
  const commitBatchSize = createFastHistogram(BATCH_SIZE_BUCKETS)
  const listeners = new Map<string, ListenerStats>()
  return {
    received,
    sent,
    dropped,
    latency,
    commitDuration,
    commitBatchSize,
    listeners,
    offlineSessions: new Set(),
    listener(name) {
      let stats = listeners.get(name)
      if (!stats) {
        stats = { name, open: 0, closedBytesIn: 0, closedBytesOut: 0, sockets: new Set(), attempts: new Float64Array(CONNECT_RESULTS.length) }
        listeners.set(name, stats)
      }
      return stats
    },
    drop(reason, count = 1) {
      const index = DROP_INDEX[reason]
      // An unknown reason from a caller outside the type system is ignored, not a crash.
      if (index !== undefined) dropped[index]! += count
    },
    observeCommit(batchSize, durationSeconds) {
      commitBatchSize.observe(batchSize)
      commitDuration.observe(durationSeconds)
    },
    bytesIn(listener) {
      let total = listener.closedBytesIn
      for (const socket of listener.sockets) total += socket.bytesRead ?? 0
      return total
    },
    bytesOut(listener) {
      let total = listener.closedBytesOut
      for (const socket of listener.sockets) total += socket.bytesWritten ?? 0
      return total
    },
  }
}

/** Maps a CONNACK return code (3.1/3.1.1) or reason code (5) to a bounded result label. */
export function connectResult(code: number): ConnectResult {
  switch (code) {
    case 0:
      return 'accepted'
    case 4: // bad user name or password
    case 0x86:
      return 'bad_credentials'
    case 5: // not authorized
    case 0x87:
      return 'not_authorized'
    default:
      return 'refused'
  }
}
