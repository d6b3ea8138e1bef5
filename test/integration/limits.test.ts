import { connect as netConnect } from 'node:net'
import type { Packet } from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import type { ConfigInput } from '../../src/config/schema.js'
import type { LimitName } from '../../src/limits/limit-stats.js'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { collectMessages, createClientPool, sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'

// Every limit: it triggers, it is counted, and a well-behaved client is not affected.

type Version = 4 | 5
const code = (p: Packet): number | undefined => (p as { reasonCode?: number; returnCode?: number }).reasonCode ?? (p as { returnCode?: number }).returnCode

let running: RunningBroker | undefined
const raws: RawClient[] = []
const pool = createClientPool()
afterEach(async () => {
  for (const r of raws.splice(0)) r.close()
  await pool.closeAll()
  await running?.close()
  running = undefined
})

async function start(config: ConfigInput): Promise<RunningBroker> {
  running = await startBroker(config)
  return running
}
const hits = (limit: LimitName) => running!.broker.security.limits.hits[limit]

async function raw(version: Version = 4, port = running!.port): Promise<RawClient> {
  const client = await rawConnect(port, version)
  raws.push(client)
  return client
}
async function connected(clientId: string, version: Version = 4): Promise<RawClient> {
  const client = await raw(version)
  client.send(connectPacket(clientId, { protocolVersion: version }))
  expect(code(await client.next((p) => p.cmd === 'connack'))).toBe(0)
  return client
}
/** The broker still does its job for an ordinary client. */
async function assertServing(): Promise<void> {
  const sub = await pool.connect(running!.url)
  const inbox = collectMessages(sub)
  await sub.subscribeAsync('alive/check', { qos: 1 })
  await sub.publishAsync('alive/check', 'yes', { qos: 1 })
  await inbox.waitFor(1)
  await sub.endAsync()
}
/** A TCP connection that the broker closes before any MQTT exchange. */
async function closedAtOnce(port: number): Promise<boolean> {
  const socket = netConnect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)))
  return Promise.race([closed, sleep(1000).then(() => (socket.destroy(), false))])
}

describe('connection limits', () => {
  it('caps open connections over all listeners and per listener', async () => {
    await start({
      listeners: [
        { type: 'tcp', host: '127.0.0.1', port: 0 },
        { type: 'tcp', host: '127.0.0.1', port: 0, maxConnections: 1 },
      ],
      limits: { maxConnections: 3 },
    })
    const second = running!.broker.listeners[1]!.address.port
    await raw(4, second)
    expect(await closedAtOnce(second)).toBe(true)
    expect(hits('listener_connections')).toBe(1)
    await raw()
    const third = await raw()
    expect(await closedAtOnce(running!.port)).toBe(true)
    expect(hits('max_connections')).toBe(1)
    third.close()
    await sleep(50)
    await assertServing()
  })

  it('limits the connection rate per source address', async () => {
    await start({ limits: { connectionRate: { perSecond: 1, burst: 3 } } })
    for (let i = 0; i < 3; i++) await raw()
    expect(await closedAtOnce(running!.port)).toBe(true)
    expect(hits('connection_rate')).toBe(1)
  })

  it('closes a connection that sends no CONNECT in time, or dribbles one byte at a time (slow loris)', async () => {
    await start({ mqtt: { connectTimeout: 300 } })
    const silent = await raw()
    const dribble = await raw()
    const bytes = (await import('mqtt-packet')).default.generate(connectPacket('slow'))
    let i = 0
    const timer = setInterval(() => i < bytes.length && dribble.sendBytes(bytes.subarray(i, ++i)), 100)
    const started = Date.now()
    try {
      await Promise.all([silent.closed, dribble.closed])
    } finally {
      clearInterval(timer)
    }
    expect(Date.now() - started).toBeLessThan(1500)
    expect(hits('connect_timeout')).toBe(2)
    expect(dribble.received).toHaveLength(0)
    await assertServing()
  })
})

describe.each([4, 5] as const)('per-client limits, MQTT version %i', (version) => {
  it('refuses a PUBLISH over the maximum packet size (v5: DISCONNECT 0x95; 3.1.1: close)', async () => {
    await start({ mqtt: { maxPacketSize: 1024 } })
    const client = await connected('big', version)
    client.send({ cmd: 'publish', topic: 'big/t', payload: Buffer.alloc(2048), qos: 0, retain: false, dup: false })
    await client.closed
    if (version === 5) expect(code(await client.next((p) => p.cmd === 'disconnect'))).toBe(0x95)
    expect(hits('packet_too_large')).toBe(1)
    await assertServing()
  })

  it('refuses a client id over the limit (3.1.1: return code 2; v5: 0x85)', async () => {
    await start({ limits: { maxClientIdLength: 10 } })
    const client = await raw(version)
    client.send(connectPacket('x'.repeat(11), { protocolVersion: version }))
    expect(code(await client.next((p) => p.cmd === 'connack'))).toBe(version === 5 ? 0x85 : 2)
    await client.closed
    await connected('x'.repeat(10), version)
    expect(hits('client_id_length')).toBe(1)
  })

  it('refuses topics over the length limit: a PUBLISH ends the connection, a SUBSCRIBE entry is refused', async () => {
    await start({ limits: { maxTopicLength: 20 } })
    const sub = await connected('sub', version)
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a'.repeat(21), qos: 0 }, { topic: 'short', qos: 0 }] })
    expect(await sub.next((p) => p.cmd === 'suback')).toMatchObject({ granted: [version === 5 ? 0x87 : 0x80, 0] })
    const pub = await connected('pub', version)
    pub.send({ cmd: 'publish', topic: 'b'.repeat(21), payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    await pub.closed
    if (version === 5) expect(code(await pub.next((p) => p.cmd === 'disconnect'))).toBe(0x90)
    expect(hits('topic_length')).toBe(2)
    await assertServing()
  })

  it('closes a connection publishing to a topic with too many levels', async () => {
    await start({ mqtt: { maxTopicLevels: 3 } })
    const pub = await connected('deep', version)
    pub.send({ cmd: 'publish', topic: 'a/b/c/d', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    await pub.closed
    if (version === 5) expect(code(await pub.next((p) => p.cmd === 'disconnect'))).toBe(0x90)
    expect(hits('topic_levels')).toBe(1)
  })

  it('caps subscriptions per client (v5: 0x97; 3.1.1: 0x80) and frees a slot on UNSUBSCRIBE', async () => {
    await start({ limits: { maxSubscriptionsPerClient: 2 } })
    const client = await connected('subs', version)
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: ['q/1', 'q/2', 'q/3'].map((topic) => ({ topic, qos: 1 as const })) })
    expect(await client.next((p) => p.cmd === 'suback' && p.messageId === 1)).toMatchObject({ granted: [1, 1, version === 5 ? 0x97 : 0x80] })
    client.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'q/1', qos: 0 }] }) // re-subscribing is not a new one
    expect(await client.next((p) => p.cmd === 'suback' && p.messageId === 2)).toMatchObject({ granted: [0] })
    client.send({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['q/2'] })
    await client.next((p) => p.cmd === 'unsuback')
    client.send({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: 'q/3', qos: 1 }] })
    expect(await client.next((p) => p.cmd === 'suback' && p.messageId === 4)).toMatchObject({ granted: [1] })
    expect(hits('subscriptions')).toBe(1)
  })

  it('drops publishes over the client\'s rate (acknowledged; v5: 0x97) and delivers the rest', async () => {
    await start({ limits: { publishRate: { perSecond: 0.5, burst: 2, policy: 'drop' } } })
    const watcher = await pool.connect(running!.url)
    const inbox = collectMessages(watcher)
    await watcher.subscribeAsync('rate/#', { qos: 1 })
    const client = await connected('fast', version)
    for (let id = 1; id <= 4; id++) {
      client.send({ cmd: 'publish', topic: `rate/${id}`, payload: Buffer.from('x'), qos: 1, messageId: id, retain: false, dup: false })
    }
    const acks = await Promise.all([1, 2, 3, 4].map((id) => client.next((p) => p.cmd === 'puback' && p.messageId === id)))
    // accepted ones: success (v5: 0x00, or 0x10 while nobody matched); the rest: 0x97 for v5
    const codes = acks.map((a) => code(a) ?? 0)
    expect(codes.map((c) => c < 0x80)).toEqual([true, true, version !== 5, version !== 5])
    if (version === 5) expect(codes.slice(2)).toEqual([0x97, 0x97])
    await inbox.waitFor(2)
    await sleep(100)
    expect(inbox.messages.map((m) => m.topic)).toEqual(['rate/1', 'rate/2'])
    expect(hits('publish_rate')).toBe(2)
    expect(client.socket.destroyed).toBe(false)
  })

  it('disconnects a client over its publish rate when the policy says so (v5: 0x96)', async () => {
    await start({ limits: { publishRate: { perSecond: 0.5, burst: 1, policy: 'disconnect' } } })
    const client = await connected('flood', version)
    for (let i = 0; i < 3; i++) client.send({ cmd: 'publish', topic: 'flood/t', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    await client.closed
    if (version === 5) expect(code(await client.next((p) => p.cmd === 'disconnect'))).toBe(0x96)
    expect(hits('publish_rate')).toBeGreaterThanOrEqual(1)
    await assertServing()
  })
})

describe('retained message limits', () => {
  async function retainedTopics(): Promise<string[]> {
    const client = await pool.connect(running!.url)
    const inbox = collectMessages(client)
    await client.subscribeAsync('ret/#', { qos: 0 })
    await sleep(200)
    await client.endAsync()
    return inbox.messages.map((m) => m.topic).sort()
  }

  it('keeps at most maxRetainedMessages topics; replacing and clearing still work', async () => {
    await start({ limits: { maxRetainedMessages: 2 } })
    const pub = await pool.connect(running!.url)
    const live = collectMessages(await pool.connect(running!.url))
    await pub.publishAsync('ret/1', 'a', { qos: 1, retain: true })
    await pub.publishAsync('ret/2', 'b', { qos: 1, retain: true })
    await pub.publishAsync('ret/3', 'c', { qos: 1, retain: true })
    expect(await retainedTopics()).toEqual(['ret/1', 'ret/2'])
    expect(hits('retained_messages')).toBe(1)
    await pub.publishAsync('ret/1', 'a2', { qos: 1, retain: true }) // replace: allowed
    await pub.publishAsync('ret/2', '', { qos: 1, retain: true }) // clear: frees a slot
    await pub.publishAsync('ret/3', 'c', { qos: 1, retain: true })
    expect(await retainedTopics()).toEqual(['ret/1', 'ret/3'])
    expect(running!.broker.security.retained?.messages).toBe(2)
    void live
  })

  it('keeps retained payloads within maxRetainedBytes', async () => {
    await start({ limits: { maxRetainedBytes: 10 } })
    const pub = await pool.connect(running!.url)
    await pub.publishAsync('ret/a', '123456', { qos: 1, retain: true })
    await pub.publishAsync('ret/b', '123456', { qos: 1, retain: true })
    expect(await retainedTopics()).toEqual(['ret/a'])
    expect(hits('retained_bytes')).toBe(1)
    expect(running!.broker.security.retained?.bytes).toBe(6)
  })
})
