// The cluster side of the bench: Redis plus 1..3 mqlite nodes as one target, and the scenario
// that spreads publishers and subscribers over the nodes.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'hdr-histogram-js'
import { Redis } from 'ioredis'
import { connectAsync } from 'mqtt'
import { freePort, launch, mqliteCommand, UNLIMITED_SETTINGS, type BrokerTarget, type RunningBroker } from './brokers.js'
import { awaitReceived, connectRaw } from './raw-mqtt.js'
import type { BenchScenario, Metric } from './scenarios.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * `nodes` mqlite processes in cluster mode on one redis-server (no persistence: the figures are
 * the message path's). Like the single brokers, every process is pinned to core 0 when pinning is
 * on, so the cluster gets the same CPU as one broker: the figures show the cost of the cluster
 * path and how it splits over nodes, not scale-out onto more cores (this machine has two).
 */
export function clusterTarget(nodes: number, pin: boolean, repoRoot: string, nodeFlags: readonly string[] = []): BrokerTarget {
  const name = `mqlite-cluster-${nodes}`
  return {
    name,
    async start() {
      const dir = mkdtempSync(join(tmpdir(), 'mqlite-bench-cluster-'))
      const redisPort = await freePort()
      const started: RunningBroker[] = []
      const cleanup = (): void => rmSync(dir, { recursive: true, force: true })
      try {
        started.push(await launch('redis', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], redisPort, () => {}, pin))
        const redisUrl = `redis://127.0.0.1:${redisPort}`
        for (let i = 0; i < nodes; i++) {
          const port = await freePort()
          const args = [
            ...mqliteCommand(repoRoot, nodeFlags),
            ...['--host', '127.0.0.1', '--port', String(port), '--redis', redisUrl, '--node-id', `bench-node-${i + 1}`, '--log-level', 'warn', '--no-metrics'],
            ...['sys.interval=0', ...UNLIMITED_SETTINGS].flatMap((kv) => ['--set', kv]),
          ]
          started.push(await launch(`${name}/${i + 1}`, process.execPath, args, port, () => {}, pin))
        }
      } catch (err) {
        await Promise.all(started.map((b) => b.stop()))
        cleanup()
        throw err
      }
      const [redis, ...members] = started as [RunningBroker, ...RunningBroker[]]
      const stats = new Redis(`redis://127.0.0.1:${redisPort}`, { lazyConnect: true, maxRetriesPerRequest: 1 })
      await stats.connect()
      const first = members[0] as RunningBroker
      let stopping: Promise<void> | undefined
      return {
        name,
        url: first.url,
        port: first.port,
        pid: first.pid,
        urls: members.map((m) => m.url),
        rssKiB: () => members.reduce((sum, m) => sum + m.rssKiB(), 0) + redis.rssKiB(),
        cpuSeconds: () => members.reduce((sum, m) => sum + m.cpuSeconds(), 0) + redis.cpuSeconds(),
        async redisCommands() {
          const info = await stats.info('stats')
          return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? Number.NaN)
        },
        stop() {
          stopping ??= (async () => {
            stats.disconnect()
            await Promise.all(members.map((m) => m.stop()))
            await redis.stop()
            cleanup()
          })()
          return stopping
        },
      }
    },
  }
}

const PAYLOAD_64 = Buffer.alloc(64, 0x61)

/**
 * Publishers and subscribers spread over the nodes (a single broker: all on it): QoS 1 fan-in
 * from 10 publishers to one subscriber per node, so every message crosses nodes; then latency
 * from a publisher on the first node to a subscriber on the last at a fixed rate.
 */
export const clusterScenario: BenchScenario = {
  name: 'cluster',
  description: 'QoS 1 across nodes: 10 publishers and 1 subscriber per node spread over the nodes; latency first node -> last node at 1000 msg/s',
  async run(broker, quick) {
    const urls = broker.urls ?? [broker.url]
    const ports = urls.map((u) => Number(new URL(u).port))
    const total = quick ? 20_000 : 100_000
    const subs = await Promise.all(ports.map((port, i) => connectRaw(port, `bench-cluster-sub-${i}`)))
    const pubs = await Promise.all(Array.from({ length: 10 }, (_, i) => connectRaw(ports[i % ports.length] as number, `bench-cluster-pub-${i}`)))
    const metrics: Metric[] = []
    const notes: string[] = []
    try {
      await Promise.all(subs.map((s) => s.subscribe('bench/cluster/#', 1)))
      await sleep(300)
      const commandsBefore = await broker.redisCommands?.()
      const t0 = performance.now()
      await Promise.all(pubs.map((p, i) => p.flood(`bench/cluster/${i}`, PAYLOAD_64, 1, total / pubs.length, 1000)))
      const expected = total * subs.length
      const { received, lastAt } = await awaitReceived(subs, expected, 5000)
      const seconds = (lastAt - t0) / 1000
      metrics.push({ key: 'rate', label: 'msg/s published, delivered to every node', value: received / subs.length / seconds, unit: 'msg/s', better: 'higher' })
      if (received < expected) notes.push(`received ${received}/${expected}`)
      const commandsAfter = await broker.redisCommands?.()
      if (commandsBefore !== undefined && commandsAfter !== undefined) {
        metrics.push({ key: 'redisPerMsg', label: 'Redis commands per message', value: (commandsAfter - commandsBefore) / total, unit: 'cmds', better: 'lower' })
      }
    } finally {
      await Promise.all([...subs, ...pubs].map((c) => c.close()))
    }

    // latency at a fixed rate, first node -> last node (the same node for a single broker)
    const rate = 1000
    const seconds = quick ? 2 : 5
    const sub = await connectAsync(urls[urls.length - 1] as string, { clientId: 'bench-cluster-lat-sub', reconnectPeriod: 0, protocolVersion: 4 })
    const pub = await connectAsync(urls[0] as string, { clientId: 'bench-cluster-lat-pub', reconnectPeriod: 0, protocolVersion: 4 })
    const histogram = build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
    try {
      let got = 0
      sub.on('message', (_topic, payload) => {
        histogram.recordValue(Math.max(1, Math.round((performance.now() - payload.readDoubleLE(0)) * 1000)))
        got++
      })
      await sub.subscribeAsync('bench/cluster-lat', { qos: 1 })
      await sleep(300)
      const count = rate * seconds
      const start = performance.now()
      for (let i = 0; i < count; i++) {
        const due = start + (i * 1000) / rate
        const wait = due - performance.now()
        if (wait > 1) await sleep(wait)
        const payload = Buffer.alloc(64)
        payload.writeDoubleLE(performance.now(), 0)
        pub.publish('bench/cluster-lat', payload, { qos: 1 })
      }
      const deadline = performance.now() + 5000
      while (got < count && performance.now() < deadline) await sleep(20)
      if (got < count) notes.push(`latency: received ${got}/${count}`)
      metrics.push(
        { key: 'p50', label: `p50 ms @${rate}/s`, value: histogram.getValueAtPercentile(50) / 1000, unit: 'ms', better: 'lower' },
        { key: 'p99', label: `p99 ms @${rate}/s`, value: histogram.getValueAtPercentile(99) / 1000, unit: 'ms', better: 'lower' },
      )
    } finally {
      await Promise.all([sub.endAsync(true), pub.endAsync(true)])
    }
    return { metrics, notes }
  },
}
