import type { Aedes, PublishPacket } from 'aedes'
import type { BrokerStats } from '../metrics/broker-stats.js'
import { snapshotClients } from '../metrics/broker-snapshot.js'
import type { PartialStoreStats } from '../metrics/store-stats.js'

export interface SysTopicsOptions {
  broker: Aedes
  stats: BrokerStats
  version: string
  /** ms since the epoch when the broker was created */
  startedAt: number
  intervalSeconds: number
  /** topic prefix (default `$SYS/broker/`; a cluster node uses `$SYS/nodes/<node>/broker/`) */
  prefix?: string
  storeStats(): Promise<PartialStoreStats>
  onError(err: unknown): void
}

export interface SysTopics {
  /** Idempotent. */
  close(): void
}

/** Windows of the `load/...` averages, as Mosquitto names them. */
const LOAD_WINDOWS = [
  ['1min', 60],
  ['5min', 300],
  ['15min', 900],
] as const

const LOADS = ['messages/received', 'messages/sent', 'bytes/received', 'bytes/sent', 'connections'] as const
type LoadName = (typeof LOADS)[number]

/**
 * Publishes the broker's status under `$SYS/broker/...` in the layout Mosquitto users know, every
 * `intervalSeconds`, retained, so a new subscriber reads the latest values at once. The broker
 * publishes them itself (`aedes.publish()` skips `authorizePublish`, which refuses `$SYS/` to
 * clients); who may read them is the Authorizer's `canSubscribe` decision, like any topic.
 * Only values that changed since the previous round are published again.
 *
 * Differences from Mosquitto: `messages/received|sent` count PUBLISH packets only (the same as
 * `publish/messages/...`); `load/...` values are per-minute rates averaged exponentially over the
 * window; `store/...` is mqlite's own (queued and in-flight messages, database size).
 */
export function startSysTopics(options: SysTopicsOptions): SysTopics {
  const { broker, stats, intervalSeconds, prefix = '$SYS/broker/' } = options
  const lastPublished = new Map<string, string>()
  const loads = new Map<LoadName, number[]>(LOADS.map((name) => [name, LOAD_WINDOWS.map(() => 0)]))
  let previous: Record<LoadName, number> | undefined
  let previousAt = performance.now()
  let maximumConnected = 0
  let running = false
  let closed = false

  const totals = (): Record<LoadName, number> => {
    let bytesIn = 0
    let bytesOut = 0
    let connections = 0
    for (const listener of stats.listeners.values()) {
      bytesIn += stats.bytesIn(listener)
      bytesOut += stats.bytesOut(listener)
      for (const n of listener.attempts) connections += n
    }
    return {
      'messages/received': sum(stats.received),
      'messages/sent': sum(stats.sent),
      'bytes/received': bytesIn,
      'bytes/sent': bytesOut,
      connections,
    }
  }

  const updateLoads = (now: Record<LoadName, number>): void => {
    const at = performance.now()
    const dt = (at - previousAt) / 1000
    if (previous && dt > 0) {
      for (const name of LOADS) {
        const perMinute = ((now[name] - previous[name]) / dt) * 60
        const averages = loads.get(name)!
        LOAD_WINDOWS.forEach(([, window], i) => {
          averages[i] = perMinute + (averages[i]! - perMinute) * Math.exp(-dt / window)
        })
      }
    }
    previous = now
    previousAt = at
  }

  const values = async (): Promise<Array<[string, string | number]>> => {
    const store = await options.storeStats()
    const snapshot = snapshotClients(broker, store)
    const connected = broker.connectedClients
    maximumConnected = Math.max(maximumConnected, connected)
    const offline = store.sessions !== undefined ? Math.max(0, store.sessions - snapshot.connected) : stats.offlineSessions.size
    const now = totals()
    updateLoads(now)
    const out: Array<[string, string | number]> = [
      ['version', `mqlite ${options.version}`],
      ['uptime', `${Math.floor((Date.now() - options.startedAt) / 1000)} seconds`],
      ['clients/connected', connected],
      ['clients/disconnected', offline],
      ['clients/total', connected + offline],
      ['clients/maximum', maximumConnected],
      ['messages/received', now['messages/received']],
      ['messages/sent', now['messages/sent']],
      ['publish/messages/received', now['messages/received']],
      ['publish/messages/sent', now['messages/sent']],
      ['publish/messages/dropped', sum(stats.dropped)],
      ['bytes/received', now['bytes/received']],
      ['bytes/sent', now['bytes/sent']],
      [
        'subscriptions/count',
        store.subscriptions !== undefined ? store.subscriptions + snapshot.cleanSessionSubscriptions : snapshot.liveSubscriptions,
      ],
    ]
    for (const name of LOADS) {
      const averages = loads.get(name)!
      LOAD_WINDOWS.forEach(([label], i) => out.push([`load/${name}/${label}`, averages[i]!.toFixed(2)]))
    }
    if (store.retained !== undefined) out.push(['retained messages/count', store.retained])
    if (store.queued !== undefined) out.push(['store/messages/count', store.queued])
    if (store.inflight !== undefined) out.push(['store/messages/inflight', store.inflight])
    if (store.dbBytes !== undefined) out.push(['store/size', store.dbBytes])
    return out
  }

  const tick = async (): Promise<void> => {
    // A slow store read must not stack rounds; a closing broker takes no more publishes.
    if (running || closed || broker.closed) return
    running = true
    try {
      for (const [name, value] of await values()) {
        const topic = `${prefix}${name}`
        const payload = String(value)
        if (lastPublished.get(topic) === payload || closed || broker.closed) continue
        lastPublished.set(topic, payload)
        const packet = { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: true, dup: false }
        broker.publish(packet as PublishPacket, (err) => {
          if (err) options.onError(err)
        })
      }
    } finally {
      running = false
    }
  }

  const run = (): void => void tick().catch(options.onError)
  const timer = setInterval(run, intervalSeconds * 1000)
  // The broker's listeners keep the process alive, not this timer.
  timer.unref()
  run()
  return {
    close() {
      closed = true
      clearInterval(timer)
    },
  }
}

function sum(values: Float64Array): number {
  let total = 0
  for (const v of values) total += v
  return total
}
