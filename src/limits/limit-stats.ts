import { EventEmitter } from 'node:events'

export const LIMIT_NAMES = [
  'max_connections',
  'listener_connections',
  'connection_rate',
  'connect_timeout',
  'packet_too_large',
  'client_id_length',
  'topic_length',
  'topic_levels',
  'subscriptions',
  'publish_rate',
  'retained_messages',
  'retained_bytes',
  'malformed_input',
] as const

export type LimitName = (typeof LIMIT_NAMES)[number]

export interface LimitHit {
  limit: LimitName
  clientId?: string | undefined
  listener?: string | undefined
  remoteAddress?: string | undefined
  topic?: string | undefined
}

/**
 * How often each limit was hit: plain counters for a metrics collector to read at scrape time,
 * plus a `limitHit` event. Independent of any metrics library.
 */
export class LimitStats extends EventEmitter<{ limitHit: [LimitHit] }> {
  readonly hits: Record<LimitName, number> = Object.fromEntries(LIMIT_NAMES.map((name) => [name, 0])) as Record<LimitName, number>

  record(hit: LimitHit): void {
    this.hits[hit.limit]++
    if (this.listenerCount('limitHit') > 0) this.emit('limitHit', hit)
  }
}
