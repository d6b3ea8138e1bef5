import mqtt from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { redisAvailable } from '../helpers/redis-server.js'
import { spawnBroker } from '../helpers/child-broker.js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { collectMessages, createClientPool, sleep } from '../helpers/mqtt-clients.js'

/** Polls until `check` holds (or fails after `ms`). */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

// What a node does while Redis is away: it refuses rather than acknowledges what it cannot store,
// says so on /readyz, and serves again by itself when Redis is back.
describe.skipIf(!redisAvailable('cluster-outage.test.ts'))('cluster mode: Redis unreachable', () => {
  let cluster: TestCluster
  const pool = createClientPool()
  let metricsUrl = ''
  beforeAll(async () => {
    cluster = await startCluster(2, (i) => (i === 0 ? ['--metrics-port', '0'] : []))
    const line = cluster.nodes[0]!.logs.find((l) => l.msg === 'metrics listener started')
    metricsUrl = String(line?.url)
  }, 60_000)
  afterAll(async () => cluster?.close())
  afterEach(async () => pool.closeAll())

  const readyz = async (): Promise<number> => (await fetch(`${metricsUrl}/readyz`)).status

  it('refuses connections and QoS 1/2 publishes while Redis is down, recovers when it returns, loses nothing acknowledged', { timeout: 60_000 }, async () => {
    const subOptions = { protocolVersion: 5 as const, clientId: 'outage-sub', clean: false, properties: { sessionExpiryInterval: 600 } }
    const sub = await pool.connect(cluster.url(1), subOptions)
    await sub.subscribeAsync('outage/#', { qos: 1 })
    await sub.endAsync()
    const v5 = await pool.connect(cluster.url(0), { protocolVersion: 5, clientId: 'outage-pub5' })
    const v4 = await pool.connect(cluster.url(0), { protocolVersion: 4, clientId: 'outage-pub4' })
    v4.on('error', () => {})
    await v5.publishAsync('outage/before', 'acked before', { qos: 1 })
    expect(await readyz()).toBe(200)

    await cluster.redis.kill()
    await eventually(async () => (await readyz()) === 503, 10_000, '/readyz to answer 503')
    expect(await (await fetch(`${metricsUrl}/readyz`)).text()).toBe('unavailable\n')

    // [MQTT-3.2.2-6] new connections: CONNACK "Server unavailable" (0x88; 3.1.1 return code 3)
    const refused5 = pool.raw(cluster.url(0), { protocolVersion: 5 })
    const err5 = await new Promise<{ code?: number }>((resolve) => refused5.once('error', (err) => resolve(err as { code?: number })))
    expect(err5.code).toBe(0x88)
    const refused4 = pool.raw(cluster.url(0), { protocolVersion: 4 })
    const err4 = await new Promise<{ code?: number }>((resolve) => refused4.once('error', (err) => resolve(err as { code?: number })))
    expect(err4.code).toBe(3)

    // QoS 1 from an MQTT 5 client: PUBACK 0x80, not a PUBACK that pretends it was stored
    const refusal = await v5.publishAsync('outage/during', 'not stored', { qos: 1 }).then(
      () => undefined,
      (err: { code?: number }) => err,
    )
    expect(refusal?.code).toBe(0x80)
    // QoS 1 from a 3.1.1 client: no negative PUBACK exists, so the connection closes unacknowledged
    const closed = new Promise<void>((resolve) => v4.once('close', () => resolve()))
    let acked = false
    v4.publish('outage/during', 'not stored either', { qos: 1 }, (err) => (acked = !err))
    await closed
    expect(acked).toBe(false)

    await cluster.redis.start()
    await eventually(async () => (await readyz()) === 200, 15_000, '/readyz to answer 200 again')
    const after = await pool.connect(cluster.url(0), { protocolVersion: 5 })
    await after.publishAsync('outage/after', 'acked after', { qos: 1 })

    const back = mqtt.connect(cluster.url(1), { ...subOptions, reconnectPeriod: 0 })
    const inbox = collectMessages(back)
    try {
      await inbox.waitFor(2, 10_000)
      await sleep(300)
      expect(inbox.messages.map((m) => m.payload.toString())).toEqual(['acked before', 'acked after'])
    } finally {
      await back.endAsync(true)
    }
  })

  it('labels metrics and $SYS topics with the node id', async () => {
    const body = await (await fetch(`${metricsUrl}/metrics`)).text()
    expect(body).toMatch(/^mqlite_messages_received_total\{qos="1",node="node1"\} \d+$/m)
    expect(body).toMatch(/^mqlite_clients_connected\{[^}]*node="node1"[^}]*\} \d+$/m)
    const watcher = await pool.connect(cluster.url(1), { protocolVersion: 5 })
    const inbox = collectMessages(watcher)
    await watcher.subscribeAsync('$SYS/nodes/+/broker/version')
    await inbox.waitFor(2, 15_000)
    expect(new Set(inbox.messages.map((m) => m.topic))).toEqual(new Set(['$SYS/nodes/node1/broker/version', '$SYS/nodes/node2/broker/version']))
  })

  it('refuses to start, naming Redis, when Redis cannot be reached; a malformed URL is a configuration error', async () => {
    await expect(spawnBroker(['--redis', 'redis://127.0.0.1:1', '--port', '0', '--no-metrics'])).rejects.toThrow(/exited with 1[\s\S]*cannot reach Redis at redis:\/\/127\.0\.0\.1:1/)
    await expect(spawnBroker(['--redis', 'localhost:6379', '--port', '0', '--no-metrics'])).rejects.toThrow(/exited with 2[\s\S]*cluster\.redis\.url/)
  })
})
