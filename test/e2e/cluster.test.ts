import mqtt from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { redisAvailable } from '../helpers/redis-server.js'
import { startCluster, HEARTBEAT_MS, type TestCluster } from '../helpers/cluster.js'
import { collectMessages, createClientPool, sleep } from '../helpers/mqtt-clients.js'

// Three mqlite processes on one real redis-server: what a client sees when the load balancer
// sends it (or the other end of its conversation) to any node.
describe.skipIf(!redisAvailable('cluster.test.ts'))('cluster mode on Redis (3 nodes)', () => {
  let cluster: TestCluster
  const pool = createClientPool()
  beforeAll(async () => {
    cluster = await startCluster(3)
  }, 60_000)
  afterAll(async () => cluster?.close())
  afterEach(async () => pool.closeAll())

  it.each([4, 5] as const)('delivers across nodes at QoS 0, 1 and 2, once each (MQTT %i)', async (protocolVersion) => {
    const sub = await pool.connect(cluster.url(1), { protocolVersion })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync(`x${protocolVersion}/#`, { qos: 2 })
    const pubs = [await pool.connect(cluster.url(0), { protocolVersion }), await pool.connect(cluster.url(2), { protocolVersion })]
    for (const [i, pub] of pubs.entries()) {
      for (const qos of [0, 1, 2] as const) await pub.publishAsync(`x${protocolVersion}/${i}/${qos}`, `m${i}${qos}`, { qos })
    }
    await inbox.waitFor(6)
    await sleep(300)
    expect(inbox.messages.map((m) => [m.topic, m.payload.toString(), m.packet.qos]).sort()).toEqual([
      [`x${protocolVersion}/0/0`, 'm00', 0],
      [`x${protocolVersion}/0/1`, 'm01', 1],
      [`x${protocolVersion}/0/2`, 'm02', 2],
      [`x${protocolVersion}/1/0`, 'm10', 0],
      [`x${protocolVersion}/1/1`, 'm11', 1],
      [`x${protocolVersion}/1/2`, 'm12', 2],
    ])
  })

  it('[MQTT-3.1.4-3] a client id connecting on another node takes the session over with DISCONNECT 0x8E', async () => {
    const options = { protocolVersion: 5 as const, clientId: 'roamer', clean: false, properties: { sessionExpiryInterval: 300 } }
    const first = await pool.connect(cluster.url(0), options)
    await first.subscribeAsync('roam/#', { qos: 1 })
    const disconnected = new Promise<number | undefined>((resolve) => first.once('disconnect', (packet) => resolve(packet.reasonCode)))
    const second = await pool.connect(cluster.url(1), options)
    expect(await disconnected).toBe(0x8e)
    expect(second.connected).toBe(true)
    const inbox = collectMessages(second)
    const pub = await pool.connect(cluster.url(2), { protocolVersion: 5 })
    await pub.publishAsync('roam/1', 'after takeover', { qos: 1 })
    await inbox.waitFor(1)
    await sleep(200)
    expect(inbox.messages.map((m) => m.payload.toString())).toEqual(['after takeover'])
    expect(first.connected).toBe(false)
  })

  it('resumes a persistent session on another node with its queued messages', async () => {
    const options = { protocolVersion: 5 as const, clientId: 'resumer', clean: false, properties: { sessionExpiryInterval: 300 } }
    const away = await pool.connect(cluster.url(0), options)
    await away.subscribeAsync('resume/#', { qos: 2 })
    await away.endAsync()
    const pub = await pool.connect(cluster.url(2), { protocolVersion: 5 })
    for (let i = 0; i < 5; i++) await pub.publishAsync(`resume/q1`, String(i), { qos: 1 })
    for (let i = 5; i < 7; i++) await pub.publishAsync(`resume/q2`, String(i), { qos: 2 })
    const back = mqtt.connect(cluster.url(1), { ...options, reconnectPeriod: 0 })
    const inbox = collectMessages(back)
    const connack = await new Promise<mqtt.IConnackPacket>((resolve) => back.once('connect', resolve))
    try {
      expect(connack.sessionPresent).toBe(true)
      await inbox.waitFor(7)
      await sleep(300)
      // in order per topic (mqtt.js hands QoS 2 messages over only at PUBREL, so not across QoS)
      const payloads = (topic: string) => inbox.messages.filter((m) => m.topic === topic).map((m) => m.payload.toString())
      expect(payloads('resume/q1')).toEqual(['0', '1', '2', '3', '4'])
      expect(payloads('resume/q2')).toEqual(['5', '6'])
    } finally {
      await back.endAsync(true)
    }
  })

  it('[MQTT-3.1.2-23] session expiry and will delay timers of the old node are cancelled when the client returns elsewhere', async () => {
    const watcher = await pool.connect(cluster.url(2), { protocolVersion: 5 })
    const wills = collectMessages(watcher)
    await watcher.subscribeAsync('timers/will', { qos: 1 })
    const options = {
      protocolVersion: 5 as const,
      clientId: 'short-lived',
      clean: false,
      properties: { sessionExpiryInterval: 2 },
      will: { topic: 'timers/will', payload: Buffer.from('gone'), qos: 1 as const, retain: false, properties: { willDelayInterval: 2 } },
    }
    const device = mqtt.connect(cluster.url(0), { ...options, reconnectPeriod: 0 })
    device.on('error', () => {})
    await new Promise((resolve) => device.once('connect', resolve))
    await device.subscribeAsync('timers/data', { qos: 1 })
    // the connection drops without DISCONNECT: node 1 arms both timers
    device.stream.destroy()
    await sleep(300)
    const back = await pool.connect(cluster.url(1), options)
    const inbox = collectMessages(back)
    await sleep(2500)
    // neither timer of node 1 fired: no will, and the session (its subscription) is still there
    expect(wills.messages).toEqual([])
    const pub = await pool.connect(cluster.url(2), { protocolVersion: 5 })
    await pub.publishAsync('timers/data', 'still subscribed', { qos: 1 })
    await inbox.waitFor(1)
    device.end(true)
  })

  it('serves the same retained messages on every node', async () => {
    const pub = await pool.connect(cluster.url(0), { protocolVersion: 4 })
    await pub.publishAsync('kept/a', 'A', { qos: 1, retain: true })
    await pub.publishAsync('kept/b', 'B', { qos: 1, retain: true })
    await pub.publishAsync('kept/a', '', { qos: 1, retain: true }) // cleared
    for (const node of [0, 1, 2]) {
      const sub = await pool.connect(cluster.url(node), { protocolVersion: 5 })
      const inbox = collectMessages(sub)
      await sub.subscribeAsync('kept/+', { qos: 1 })
      await inbox.waitFor(1)
      await sleep(150)
      expect(inbox.messages.map((m) => [m.topic, m.payload.toString(), m.packet.retain])).toEqual([['kept/b', 'B', true]])
    }
  })

  it('acknowledges a QoS 1 message on the node that delivered it: nothing is sent twice on reconnect', async () => {
    const options = { protocolVersion: 4 as const, clientId: 'acker', clean: false }
    const sub = await pool.connect(cluster.url(0), options)
    await sub.subscribeAsync('ack/#', { qos: 1 })
    const inbox = collectMessages(sub)
    const pub = await pool.connect(cluster.url(1), { protocolVersion: 4 })
    for (let i = 0; i < 10; i++) await pub.publishAsync(`ack/${i}`, String(i), { qos: 1 })
    await inbox.waitFor(10)
    await sleep(200)
    await sub.endAsync()
    // every copy was acknowledged on node 1: node 3 has nothing left to send
    const again = await pool.connect(cluster.url(2), options)
    const replay = collectMessages(again)
    await sleep(500)
    expect(replay.messages).toEqual([])
  })

  it('[MQTT-4.8.2-4] a shared subscription group delivers each message once per cluster, not once per node', async () => {
    const members = await Promise.all([
      pool.connect(cluster.url(0), { protocolVersion: 5, clientId: 'worker-1' }),
      pool.connect(cluster.url(1), { protocolVersion: 4, clientId: 'worker-2' }),
      pool.connect(cluster.url(2), { protocolVersion: 5, clientId: 'worker-3' }),
    ])
    const inboxes = members.map((m) => collectMessages(m))
    await Promise.all(members.map((m) => m.subscribeAsync('$share/workers/jobs/#', { qos: 1 })))
    await sleep(300) // membership reaches every node through Redis
    const pubs = [await pool.connect(cluster.url(0), { protocolVersion: 5 }), await pool.connect(cluster.url(2), { protocolVersion: 5 })]
    await Promise.all(pubs.map(async (pub, p) => {
      for (let i = 0; i < 30; i++) await pub.publishAsync(`jobs/${p}`, `${p}-${i}`, { qos: 1 })
    }))
    await sleep(800)
    const received = inboxes.flatMap((inbox) => inbox.messages.map((m) => m.payload.toString()))
    expect(received.length).toBe(60)
    expect(new Set(received).size).toBe(60)
    // spread over the members, not all on one
    for (const inbox of inboxes) expect(inbox.messages.length).toBeGreaterThan(5)
  })

  it('queues a shared group\'s messages for a persistent member while no member is connected', async () => {
    const options = { protocolVersion: 5 as const, clientId: 'night-worker', clean: false, properties: { sessionExpiryInterval: 300 } }
    const worker = await pool.connect(cluster.url(0), options)
    await worker.subscribeAsync('$share/night/batch/#', { qos: 1 })
    await worker.endAsync()
    await sleep(300)
    const pub = await pool.connect(cluster.url(2), { protocolVersion: 5 })
    for (let i = 0; i < 5; i++) await pub.publishAsync('batch/x', String(i), { qos: 1 })
    const back = mqtt.connect(cluster.url(1), { ...options, reconnectPeriod: 0 })
    const inbox = collectMessages(back)
    try {
      await inbox.waitFor(5)
      await sleep(300)
      expect(inbox.messages.map((m) => m.payload.toString())).toEqual(['0', '1', '2', '3', '4'])
    } finally {
      await back.endAsync(true)
    }
  })

  it('publishes the wills of a killed node exactly once, after their delay, unless the client is back; its sessions expire', { timeout: 30_000 }, async () => {
    const watchers = [await pool.connect(cluster.url(0), { protocolVersion: 5 }), await pool.connect(cluster.url(1), { protocolVersion: 4 })]
    const inboxes = watchers.map((w) => collectMessages(w))
    await Promise.all(watchers.map((w) => w.subscribeAsync('status/#', { qos: 1 })))
    const arrivedAt = new Map<string, number>()
    watchers[0]!.on('message', (topic) => arrivedAt.set(topic, Date.now()))
    const delays: Record<string, number> = { 'dev-a': 0, 'dev-b': 0, 'dev-back': 0, 'dev-delayed': 2 }
    const devices = Object.entries(delays).map(([clientId, willDelayInterval]) => {
      const device = mqtt.connect(cluster.url(2), {
        protocolVersion: 5,
        clientId,
        reconnectPeriod: 0,
        properties: { sessionExpiryInterval: 60 },
        will: { topic: `status/${clientId}`, payload: Buffer.from('offline'), qos: 1, retain: false, properties: { willDelayInterval, userProperties: { reason: 'lost' } } },
      })
      device.on('error', () => {})
      return device
    })
    await Promise.all(devices.map((d) => new Promise((resolve) => d.once('connect', resolve))))
    // a session on the dead node with a short expiry: it must expire although its node is gone
    const expiring = await pool.connect(cluster.url(2), { protocolVersion: 5, clientId: 'dev-expiring', clean: false, properties: { sessionExpiryInterval: 2 } })
    await expiring.subscribeAsync('expiring/#', { qos: 1 })
    await sleep(200) // the session record reaches Redis
    await cluster.nodes[2]!.kill()
    const killedAt = Date.now()
    // one device is back on a surviving node at once: its old connection's will is stale
    const back = await pool.connect(cluster.url(0), { protocolVersion: 5, clientId: 'dev-back', clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(back.connected).toBe(true)
    for (const inbox of inboxes) await inbox.waitFor(3, 15_000)
    // several survivors sweep for dead nodes' wills: give them all the time to (wrongly) repeat one
    await sleep(HEARTBEAT_MS * 10)
    for (const inbox of inboxes) {
      expect(inbox.messages.map((m) => [m.topic, m.payload.toString()]).sort()).toEqual([
        ['status/dev-a', 'offline'],
        ['status/dev-b', 'offline'],
        ['status/dev-delayed', 'offline'],
      ])
    }
    expect(inboxes[0]!.messages[0]!.packet.properties?.userProperties).toEqual({ reason: 'lost' })
    // [MQTT-3.1.3-9] the delayed will waited its 2 s after the node was found dead
    expect(arrivedAt.get('status/dev-delayed')! - killedAt).toBeGreaterThanOrEqual(2000)
    // [MQTT-3.1.2-23] the dead node's session expired on the survivors' clock
    const returning = mqtt.connect(cluster.url(0), { protocolVersion: 5, clientId: 'dev-expiring', clean: false, reconnectPeriod: 0, properties: { sessionExpiryInterval: 2 } })
    const connack = await new Promise<mqtt.IConnackPacket>((resolve) => returning.once('connect', resolve))
    returning.end(true)
    expect(connack.sessionPresent).toBe(false)
    for (const d of devices) d.end(true)
    await cluster.start(2)
  })
})

// One node alone: when it is killed, nobody else can take its clients' wills; its next run must.
describe.skipIf(!redisAvailable('cluster.test.ts'))('cluster mode on Redis (1 node, restarted)', () => {
  let cluster: TestCluster
  const pool = createClientPool()
  beforeAll(async () => {
    cluster = await startCluster(1)
  }, 60_000)
  afterAll(async () => cluster?.close())
  afterEach(async () => pool.closeAll())

  it('[MQTT-3.1.2-8] publishes the wills its previous run left, once, after their delay', { timeout: 20_000 }, async () => {
    const devices = ['dev-now', 'dev-later'].map((clientId, i) => {
      const device = mqtt.connect(cluster.url(0), {
        protocolVersion: 5,
        clientId,
        reconnectPeriod: 0,
        properties: { sessionExpiryInterval: 60 },
        // delays of 1 and 2 s: the watcher below subscribes after the restart, within the first
        will: { topic: `left/${clientId}`, payload: Buffer.from('offline'), qos: 1, retain: false, properties: { willDelayInterval: i + 1 } },
      })
      device.on('error', () => {})
      return device
    })
    await Promise.all(devices.map((d) => new Promise((resolve) => d.once('connect', resolve))))
    await sleep(200) // the wills and session records reach Redis
    await cluster.nodes[0]!.kill()
    for (const d of devices) d.end(true)
    await cluster.start(0)
    const startedAt = Date.now()
    const watcher = await pool.connect(cluster.url(0), { protocolVersion: 5 })
    const inbox = collectMessages(watcher)
    const arrivedAt = new Map<string, number>()
    watcher.on('message', (topic) => arrivedAt.set(topic, Date.now()))
    await watcher.subscribeAsync('left/#', { qos: 1 })
    await inbox.waitFor(2, 10_000)
    await sleep(HEARTBEAT_MS * 5)
    expect(inbox.messages.map((m) => [m.topic, m.payload.toString()]).sort()).toEqual([
      ['left/dev-later', 'offline'],
      ['left/dev-now', 'offline'],
    ])
    // the timers start just before the restarted node accepts connections
    expect(arrivedAt.get('left/dev-later')! - startedAt).toBeGreaterThanOrEqual(1500)
  })
})
