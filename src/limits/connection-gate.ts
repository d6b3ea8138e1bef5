import type { Duplex } from 'node:stream'
import type { Config } from '../config/schema.js'
import type { LimitName, LimitStats } from './limit-stats.js'
import { TokenBucket, burstFor } from './token-bucket.js'

/** Past this many tracked source addresses, buckets that have refilled are forgotten. */
const PRUNE_THRESHOLD = 10_000

export interface ConnectionGate {
  /** Sets the connection limit of a bound listener (0 = none). */
  registerListener(name: string, maxConnections: number): void
  /**
   * Admits a new connection or refuses it (undefined when admitted). An admitted stream is
   * counted until it closes. Refusing happens before any MQTT byte is read: under a flood,
   * turning a socket away must cost as little as possible.
   */
  admit(stream: Duplex, listener: string, remoteAddress: string | undefined): LimitName | undefined
  /** Open connections per listener and in total. */
  readonly open: { total: number; byListener: ReadonlyMap<string, number> }
}

export function createConnectionGate(limits: Config['limits'], stats: LimitStats): ConnectionGate {
  const perListener = new Map<string, number>()
  const listenerMax = new Map<string, number>()
  const buckets = new Map<string, TokenBucket>()
  const rate = limits.connectionRate
  const open = { total: 0, byListener: perListener }
  /** streams counted in `open` until they close */
  const admitted = new WeakSet<Duplex>()
  const releasers = new Map<string, (this: Duplex) => void>()

  function overRate(address: string | undefined): boolean {
    if (rate.perSecond <= 0 || address === undefined) return false
    let bucket = buckets.get(address)
    if (!bucket) {
      if (buckets.size >= PRUNE_THRESHOLD) for (const [key, b] of buckets) if (b.isFull()) buckets.delete(key)
      bucket = new TokenBucket(rate.perSecond, burstFor(rate))
      buckets.set(address, bucket)
    }
    return !bucket.take()
  }

  return {
    open,
    registerListener(name, maxConnections) {
      listenerMax.set(name, maxConnections)
      perListener.set(name, perListener.get(name) ?? 0)
    },
    admit(stream, listener, remoteAddress) {
      const here = perListener.get(listener) ?? 0
      const max = listenerMax.get(listener) ?? 0
      let refused: LimitName | undefined
      if (overRate(remoteAddress)) refused = 'connection_rate'
      else if (limits.maxConnections > 0 && open.total >= limits.maxConnections) refused = 'max_connections'
      else if (max > 0 && here >= max) refused = 'listener_connections'
      if (refused) {
        stats.record({ limit: refused, listener, remoteAddress })
        stream.destroy()
        return refused
      }
      open.total++
      perListener.set(listener, here + 1)
      admitted.add(stream)
      stream.on('close', releaserOf(listener))
      return undefined
    },
  }

  // Per connection only a set entry: the 'close' listener is one function per listener name.
  function releaserOf(listener: string): (this: Duplex) => void {
    let release = releasers.get(listener)
    if (!release) {
      release = function (this: Duplex): void {
        if (!admitted.delete(this)) return
        open.total--
        perListener.set(listener, (perListener.get(listener) ?? 1) - 1)
      }
      releasers.set(listener, release)
    }
    return release
  }
}
