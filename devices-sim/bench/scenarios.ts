// The benchmark scenarios. Each runs against one freshly started broker and returns named
// metrics; the harness repeats, interleaves and takes medians.
import { connect, connectAsync } from 'mqtt'
import type { RunningBroker } from './brokers.js'
import { closeClients, collect, connectClients, publishWindowed } from './load.js'
import { awaitReceived, connectRaw } from './raw-mqtt.js'
import type { RawClient } from './raw-mqtt.js'
import type { QoS } from './load.js'
import { runScenario } from '../index.js'
import { clusterScenario } from './cluster.js'

export interface Metric {
  key: string
  label: string
  value: number
  unit: string
  better: 'higher' | 'lower'
}

export interface ScenarioResult {
  metrics: Metric[]
  notes: string[]
}

export interface BenchScenario {
  name: string
  description: string
  run(broker: RunningBroker, quick: boolean): Promise<ScenarioResult>
}

const PAYLOAD_64 = Buffer.alloc(64, 0x61)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * The broker's own CPU time per message since `cpu0`: steadier than throughput on a shared host
 * (time the broker spent waiting for the load generator or for another tenant is not in it).
 */
function cpuPerMessage(broker: RunningBroker, cpu0: number, messages: number, label: string): Metric {
  const value = messages > 0 ? ((broker.cpuSeconds() - cpu0) * 1e6) / messages : Number.NaN
  return { key: 'cpuPerMessage', label, value, unit: 'µs', better: 'lower' }
}

/** `session`: the subscriber keeps a persistent session, so every copy is stored for it first. */
function fanIn(qos: QoS, session = false): BenchScenario {
  return {
    name: `fanin-qos${qos}${session ? '-session' : ''}`,
    description: `QoS ${qos} fan-in: 10 publishers, 64-byte payloads, 1 ${session ? 'persistent-session' : 'clean-session'} subscriber`,
    async run(broker, quick) {
      const total = quick ? 50_000 : qos === 0 ? 1_000_000 : qos === 1 ? 300_000 : 150_000
      const publishers = 10
      const sub = await connectRaw(broker.port, `bench-fanin-sub-${qos}${session ? '-session' : ''}`, { clean: !session })
      const pubs = await Promise.all(Array.from({ length: publishers }, (_, i) => connectRaw(broker.port, `bench-fanin-pub-${qos}-${i}`)))
      try {
        await sub.subscribe('bench/fanin/#', qos)
        const cpu0 = broker.cpuSeconds()
        const t0 = performance.now()
        await Promise.all(pubs.map((p, i) => p.flood(`bench/fanin/${i}`, PAYLOAD_64, qos, total / publishers, 1000)))
        const publishedAt = performance.now()
        const r = await awaitReceived([sub], total, 5000)
        return {
          metrics: [
            { key: 'rate', label: 'msg/s received', value: r.received / ((r.lastAt - t0) / 1000), unit: 'msg/s', better: 'higher' },
            // QoS 0 has no acknowledgement; "written" would only measure socket buffers.
            ...(qos === 0 ? [] : [{ key: 'publishRate', label: 'msg/s acknowledged', value: total / ((publishedAt - t0) / 1000), unit: 'msg/s', better: 'higher' as const }]),
            cpuPerMessage(broker, cpu0, r.received, 'µs broker CPU/msg'),
          ],
          notes: r.received < total ? [`received ${r.received}/${total}`] : [],
        }
      } finally {
        await Promise.all([sub, ...pubs].map((c) => c.close()))
      }
    },
  }
}

const fanOut: BenchScenario = {
  name: 'fanout',
  description: 'fan-out 1 -> 100 subscribers, QoS 0, 64-byte payloads',
  async run(broker, quick) {
    const messages = quick ? 1000 : 10_000
    const subs = await Promise.all(Array.from({ length: 100 }, (_, i) => connectRaw(broker.port, `bench-fanout-sub-${i}`)))
    const pub = await connectRaw(broker.port, 'bench-fanout-pub')
    try {
      await Promise.all(subs.map((s) => s.subscribe('bench/fanout', 0)))
      const cpu0 = broker.cpuSeconds()
      const t0 = performance.now()
      await pub.flood('bench/fanout', PAYLOAD_64, 0, messages, 0)
      const r = await awaitReceived(subs, messages * subs.length, 5000)
      return {
        metrics: [
          { key: 'rate', label: 'deliveries/s', value: r.received / ((r.lastAt - t0) / 1000), unit: 'msg/s', better: 'higher' },
          cpuPerMessage(broker, cpu0, r.received, 'µs broker CPU/delivery'),
        ],
        notes: r.received < messages * subs.length ? [`received ${r.received}/${messages * subs.length}`] : [],
      }
    } finally {
      await Promise.all([...subs, pub].map((c) => c.close()))
    }
  },
}

const latency: BenchScenario = {
  name: 'latency',
  description: 'end-to-end latency at a fixed rate below saturation (device simulator, QoS 1)',
  async run(broker, quick) {
    const devices = quick ? 50 : 200
    const report = await runScenario(
      {
        name: 'bench-latency',
        broker: { url: broker.url, protocol: 4 },
        seed: 1,
        duration: quick ? '3s' : '10s',
        grace: '3s',
        profiles: [{ name: 'lat', count: devices, publish: { topic: 'bench/lat/{deviceId}', rate: '10/s', qos: 1, payload: { format: 'binary', size: 64 } } }],
      },
      { workers: 0 },
    )
    const l = report.latencyMs
    return {
      metrics: [
        { key: 'p50', label: `p50 ms @${devices * 10}/s`, value: l.p50, unit: 'ms', better: 'lower' },
        { key: 'p99', label: `p99 ms @${devices * 10}/s`, value: l.p99, unit: 'ms', better: 'lower' },
        { key: 'p999', label: `p99.9 ms @${devices * 10}/s`, value: l.p999, unit: 'ms', better: 'lower' },
      ],
      notes: report.messages.lost > 0 ? [`${report.messages.lost} lost`] : [],
    }
  },
}

const idleConnections: BenchScenario = {
  name: 'idle',
  description: 'idle connections: broker memory per connection (VmRSS delta)',
  async run(broker, quick) {
    const count = quick ? 1000 : 10_000
    await sleep(500)
    const before = broker.rssKiB()
    const clients = await connectClients(broker.url, count, (i) => ({ clientId: `bench-idle-${i}`, keepalive: 600 }), 250)
    try {
      await sleep(2000) // let the broker settle its per-connection allocations
      const after = broker.rssKiB()
      return {
        metrics: [{ key: 'kibPerConn', label: `KiB/connection (${count})`, value: (after - before) / count, unit: 'KiB', better: 'lower' }],
        notes: [],
      }
    } finally {
      await closeClients(clients)
    }
  },
}

const retained: BenchScenario = {
  name: 'retained',
  description: 'retained messages delivered to one wildcard subscriber',
  async run(broker, quick) {
    const count = quick ? 10_000 : 100_000
    const [pub] = await connectClients(broker.url, 1, () => ({ clientId: 'bench-retained-pub' }))
    try {
      // QoS 1 so every retained message is stored before the subscriber arrives.
      const stored = await publishWindowed(pub!, { count, qos: 1, window: 1000, retain: true, topic: (i) => `bench/retained/${i % 100}/${i}`, payload: () => PAYLOAD_64 })
      const sub = await connectAsync(broker.url, { clientId: 'bench-retained-sub', reconnectPeriod: 0, protocolVersion: 4 })
      try {
        const receiving = collect([sub], count, 10_000)
        const t0 = performance.now()
        await sub.subscribeAsync('bench/retained/#', { qos: 0 })
        const r = await receiving.done
        const seconds = (r.lastAt - t0) / 1000
        return {
          metrics: [
            { key: 'seconds', label: `s to receive ${count}`, value: seconds, unit: 's', better: 'lower' },
            { key: 'rate', label: 'retained msg/s', value: r.received / seconds, unit: 'msg/s', better: 'higher' },
          ],
          notes: r.received < count || stored.failed > 0 ? [`received ${r.received}/${count}`] : [],
        }
      } finally {
        await closeClients([sub])
      }
    } finally {
      await closeClients([pub!])
    }
  },
}

/** QoS 1 publishes PUBACKed while `sessions` persistent subscribers are offline (queued for each). */
const durable = (sessions: number): BenchScenario => ({
  name: sessions === 10 ? 'durable' : `durable-${sessions}`,
  description: `QoS 1 publishes PUBACKed while ${sessions} persistent subscriber(s) are offline`,
  async run(broker, quick) {
    const count = quick ? 10_000 : 100_000
    const sessionOptions = (i: number) => ({ clientId: `bench-durable-sub-${i}`, clean: false })
    const subs = await connectClients(broker.url, sessions, sessionOptions)
    await Promise.all(subs.map((s) => s.subscribeAsync('bench/durable/#', { qos: 1 })))
    await closeClients(subs)
    const pubs = await connectClients(broker.url, 10, (i) => ({ clientId: `bench-durable-pub-${i}` }))
    try {
      await sleep(500)
      const before = broker.rssKiB()
      const cpu0 = broker.cpuSeconds()
      const t0 = performance.now()
      const results = await Promise.all(pubs.map((p, i) => publishWindowed(p, { count: count / 10, qos: 1, window: 500, topic: () => `bench/durable/${i}`, payload: () => PAYLOAD_64 })))
      const seconds = (performance.now() - t0) / 1000
      const acked = results.reduce((s, r) => s + r.acked, 0)
      const cpu = cpuPerMessage(broker, cpu0, acked, 'µs broker CPU/msg')
      const after = broker.rssKiB()
      const disk = broker.diskBytes?.()
      // Check the backlog really was queued: one subscriber comes back and drains its session.
      // Listen before the CONNACK: the broker sends the queue right behind it.
      const backAt = performance.now()
      const back = connect(broker.url, { ...sessionOptions(0), reconnectPeriod: 0, protocolVersion: 4 })
      const draining = collect([back], count, 5000)
      const drained = await draining.done
      await closeClients([back])
      return {
        metrics: [
          { key: 'rate', label: 'PUBACKed msg/s', value: acked / seconds, unit: 'msg/s', better: 'higher' },
          cpu,
          // from the returning subscriber's connect to its last queued message (it PUBACKs each)
          { key: 'drainRate', label: 'backlog drained msg/s', value: drained.received / ((drained.lastAt - backAt) / 1000), unit: 'msg/s', better: 'higher' },
          { key: 'rssGrowth', label: `RSS growth KiB (${count * sessions} queued)`, value: after - before, unit: 'KiB', better: 'lower' },
          // database and write-ahead log (mqlite SQLite); 0 for a broker that keeps its queues in memory
          ...(disk === undefined ? [] : [{ key: 'diskPerCopy', label: 'disk bytes per queued copy', value: disk / (count * sessions), unit: 'B', better: 'lower' as const }]),
        ],
        notes: drained.received < count ? [`a returning subscriber got ${drained.received}/${count} queued messages`] : [],
      }
    } finally {
      await closeClients(pubs)
    }
  },
})

export const SCENARIOS: readonly BenchScenario[] = [fanIn(0), fanIn(1), fanIn(1, true), fanIn(2), fanOut, latency, idleConnections, retained, durable(1), durable(10), clusterScenario]
