import type { Readable } from 'node:stream'
import type { Config } from '../config/schema.js'
import type { LimitStats } from './limit-stats.js'

interface RetainedPacket {
  topic: string
  payload: Buffer | string
}

/** The store methods the retained limit wraps and reads. */
export interface RetainedStore {
  storeRetained(packet: RetainedPacket): Promise<void>
  createRetainedStreamCombi(patterns: string[]): Readable
}

export interface RetainedLimit {
  readonly messages: number
  readonly bytes: number
}

/**
 * Caps the retained messages clients leave behind, by count and by payload bytes. A retained
 * PUBLISH that would create a new retained topic past either limit, or grow the total past the
 * byte limit, is still delivered to current subscribers but not retained; replacing or clearing
 * an existing retained message is always possible when it fits. The broker's own `$SYS` topics
 * are not counted. The totals start from what the store already holds.
 */
export async function limitRetained(store: RetainedStore, limits: Config['limits'], stats: LimitStats): Promise<RetainedLimit> {
  const sizes = new Map<string, number>()
  let bytes = 0
  const totals = {
    get messages() {
      return sizes.size
    },
    get bytes() {
      return bytes
    },
  }
  const maxMessages = limits.maxRetainedMessages
  const maxBytes = limits.maxRetainedBytes
  if (maxMessages === 0 && maxBytes === 0) return totals

  for await (const packet of store.createRetainedStreamCombi(['#']) as AsyncIterable<RetainedPacket>) {
    const size = byteLength(packet.payload)
    sizes.set(packet.topic, size)
    bytes += size
  }

  const storeRetained = store.storeRetained.bind(store)
  store.storeRetained = async (packet) => {
    if (packet.topic.startsWith('$SYS/')) return storeRetained(packet)
    const size = byteLength(packet.payload)
    const previous = sizes.get(packet.topic)
    if (size === 0) {
      if (previous !== undefined) {
        sizes.delete(packet.topic)
        bytes -= previous
      }
      return storeRetained(packet)
    }
    if (previous === undefined && maxMessages > 0 && sizes.size >= maxMessages) {
      stats.record({ limit: 'retained_messages', topic: packet.topic })
      return
    }
    if (maxBytes > 0 && bytes - (previous ?? 0) + size > maxBytes) {
      stats.record({ limit: 'retained_bytes', topic: packet.topic })
      return
    }
    sizes.set(packet.topic, size)
    bytes += size - (previous ?? 0)
    return storeRetained(packet)
  }
  return totals
}

function byteLength(payload: Buffer | string): number {
  return typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
}
