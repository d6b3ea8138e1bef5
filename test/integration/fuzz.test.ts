import { connect as netConnect } from 'node:net'
import fc from 'fast-check'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { collectMessages, createClientPool, sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'

// Hostile input: each case gets the disconnect the spec asks for, and the broker keeps serving
// others. Then fast-check throws random and mutated packets at it for a bounded time. A crash,
// an unhandled rejection or an uncaught exception fails the run (vitest reports them).

const MAX_PACKET = 64 * 1024
let running: RunningBroker
const pool = createClientPool()
const raws: RawClient[] = []

beforeAll(async () => {
  running = await startBroker({ mqtt: { connectTimeout: 500, maxPacketSize: MAX_PACKET } })
})
afterEach(async () => {
  for (const r of raws.splice(0)) r.close()
  await pool.closeAll()
})
afterAll(() => running?.close())

async function raw(version: 4 | 5 = 4): Promise<RawClient> {
  const client = await rawConnect(running.port, version)
  raws.push(client)
  return client
}
async function connected(clientId: string, version: 4 | 5): Promise<RawClient> {
  const client = await raw(version)
  client.send(connectPacket(clientId, { protocolVersion: version }))
  await client.next((p) => p.cmd === 'connack')
  return client
}
async function assertServing(): Promise<void> {
  const sub = await pool.connect(running.url, { protocolVersion: 5 })
  const inbox = collectMessages(sub)
  await sub.subscribeAsync('alive/check', { qos: 1 })
  await sub.publishAsync('alive/check', 'yes', { qos: 1 })
  await inbox.waitFor(1)
  await sub.endAsync()
}
/** Closed by the broker within the time; for MQTT 5 also the DISCONNECT reason, if one came. */
async function closedBy(client: RawClient, ms = 2000): Promise<number | undefined> {
  await Promise.race([client.closed, sleep(ms).then(() => Promise.reject(new Error('connection was not closed')))])
  const disconnect = client.received.find((p) => p.cmd === 'disconnect') as { reasonCode?: number } | undefined
  return disconnect?.reasonCode
}

const publishHeader = (topic: Buffer, payload = Buffer.from('x')): Buffer => {
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, payload])
  return Buffer.concat([Buffer.from([0x30, body.length]), body])
}

describe.each([4, 5] as const)('hostile packets, MQTT version %i', (version) => {
  it('a remaining length longer than four bytes: malformed, closed', async () => {
    const client = await connected(`rl-${version}`, version)
    client.sendBytes(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]))
    const reason = await closedBy(client)
    if (reason !== undefined) expect(reason).toBeGreaterThanOrEqual(0x80)
    await assertServing()
  })

  it('a string length that runs past the packet: malformed, closed', async () => {
    const client = await connected(`len-${version}`, version)
    client.sendBytes(Buffer.from([0x30, 0x03, 0x00, 0x05, 0x61]))
    const reason = await closedBy(client)
    if (reason !== undefined) expect(reason).toBeGreaterThanOrEqual(0x80)
    await assertServing()
  })

  it.each([
    ['invalid UTF-8', Buffer.from([0x61, 0x2f, 0xff, 0xfe])],
    ['U+0000', Buffer.from('a/\u0000/b')],
  ])('a topic with %s: closed (v5: DISCONNECT 0x81)', async (_name, topic) => {
    const before = running.broker.security.limits.hits.malformed_input
    const watcher = await pool.connect(running.url)
    const inbox = collectMessages(watcher)
    await watcher.subscribeAsync('#')
    const client = await connected(`utf8-${version}`, version)
    client.sendBytes(version === 5 ? publishV5(topic) : publishHeader(topic))
    const reason = await closedBy(client)
    if (version === 5) expect(reason).toBe(0x81)
    expect(running.broker.security.limits.hits.malformed_input).toBe(before + 1)
    await sleep(50)
    expect(inbox.messages).toHaveLength(0)
    await assertServing()
  })

  it('a SUBSCRIBE with reserved flags 0000 instead of 0010: closed [MQTT-3.8.1-1]', async () => {
    const client = await connected(`flags-${version}`, version)
    const good = mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }] }, { protocolVersion: version })
    good[0] = 0x80
    client.sendBytes(good)
    await closedBy(client)
    expect(client.received.some((p) => p.cmd === 'suback')).toBe(false)
    await assertServing()
  })

  it('a CONNECT with the reserved flag set: closed without CONNACK [MQTT-3.1.2-3]', async () => {
    const client = await raw(version)
    const bytes = mqttPacket.generate(connectPacket(`rsv-${version}`, { protocolVersion: version }), { protocolVersion: version })
    // fixed header (2) + protocol name (6) + level (1) = connect flags at offset 9
    bytes[9] = bytes[9]! | 0x01
    client.sendBytes(bytes)
    await closedBy(client)
    expect(client.received).toHaveLength(0)
  })

  it('a packet before CONNECT: closed [MQTT-3.1.0-1]', async () => {
    const client = await raw(version)
    client.send({ cmd: 'pingreq' })
    await closedBy(client)
    expect(client.received).toHaveLength(0)
  })

  it('a second CONNECT: closed [MQTT-3.1.0-2]', async () => {
    const client = await connected(`twice-${version}`, version)
    client.send(connectPacket(`twice-${version}`, { protocolVersion: version }))
    await closedBy(client)
    await assertServing()
  })

  it('a huge remaining length: closed from the fixed header, before the body arrives', async () => {
    const client = await connected(`huge-${version}`, version)
    client.sendBytes(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, 0x61]))
    const reason = await closedBy(client, 500)
    if (version === 5) expect(reason).toBe(0x95)
    const early = await raw(version)
    early.sendBytes(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f, 0x00]))
    await closedBy(early, 500)
    await assertServing()
  })
})

function publishV5(topic: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, Buffer.from([0x00]), Buffer.from('x')])
  return Buffer.concat([Buffer.from([0x30, body.length]), body])
}

describe('fuzzing over TCP', () => {
  /** Valid packets of every kind, as bytes, for the mutations to start from. */
  const validPackets = fc
    .record({
      version: fc.constantFrom(3, 4, 5),
      topic: fc.string({ minLength: 1, maxLength: 30 }).map((t) => t.replace(/[+#]/g, 'x')),
      payload: fc.uint8Array({ maxLength: 64 }),
      qos: fc.constantFrom(0, 1, 2),
      id: fc.integer({ min: 1, max: 65535 }),
    })
    .chain(({ version, topic, payload, qos, id }) => {
      const protocolVersion = version as 3 | 4 | 5
      const connect: Packet = {
        cmd: 'connect',
        protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
        protocolVersion,
        clean: true,
        clientId: `fuzz-${id}`,
        keepalive: 5,
      }
      const others: Packet[] = [
        { cmd: 'publish', topic, payload: Buffer.from(payload), qos: qos as 0 | 1 | 2, retain: false, dup: false, ...(qos > 0 && { messageId: id }) },
        { cmd: 'subscribe', messageId: id, subscriptions: [{ topic, qos: qos as 0 | 1 | 2 }] },
        { cmd: 'unsubscribe', messageId: id, unsubscriptions: [topic] },
        { cmd: 'puback', messageId: id },
        { cmd: 'pubrel', messageId: id },
        { cmd: 'pingreq' },
        { cmd: 'disconnect' },
      ]
      const encode = (p: Packet): Buffer => mqttPacket.generate(p, { protocolVersion })
      return fc.subarray(others, { minLength: 0 }).map((rest) => Buffer.concat([encode(connect), ...rest.map(encode)]))
    })

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  )
  const mutated = fc.tuple(validPackets, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([bytes, mutations]) => {
    let out = Buffer.from(bytes)
    for (const m of mutations) {
      const at = m.at % Math.max(1, out.length)
      if (m.kind === 'flip') out[at] = m.value
      else if (m.kind === 'truncate') out = out.subarray(0, at)
      else out = Buffer.concat([out.subarray(0, at), Buffer.from(m.bytes), out.subarray(at)])
    }
    return out
  })
  const randomBytes = fc.uint8Array({ minLength: 1, maxLength: 512 }).map((b) => Buffer.from(b))

  /** Sends the bytes (in up to three chunks) and gives the broker a moment to react. */
  async function throwAt(bytes: Buffer, chunks: number): Promise<void> {
    const socket = netConnect({ host: '127.0.0.1', port: running.port })
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    const size = Math.ceil(bytes.length / chunks)
    for (let i = 0; i < bytes.length; i += size) {
      socket.write(bytes.subarray(i, i + size))
      await sleep(1)
    }
    await Promise.race([new Promise((r) => socket.once('close', r)), sleep(15)])
    socket.destroy()
  }

  it('survives random and mutated packets and still serves a well-behaved client, in bounded memory', async () => {
    await assertServing()
    const heapBefore = process.memoryUsage().heapUsed
    let runs = 0
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutated, mutated, randomBytes), fc.integer({ min: 1, max: 3 }), async (bytes, chunks) => {
        runs++
        await throwAt(bytes, chunks)
        return running.broker.state === 'ready'
      }),
      { numRuns: 100_000, interruptAfterTimeLimit: 12_000, markInterruptAsFailure: false },
    )
    expect(runs).toBeGreaterThan(100)
    await sleep(600) // connections that never completed CONNECT time out
    await assertServing()
    const growth = process.memoryUsage().heapUsed - heapBefore
    expect(growth).toBeLessThan(150 * 1024 * 1024)
    // nothing left behind: every fuzz connection is gone (the serving check's client closed too)
    const deadline = Date.now() + 3000
    while (running.broker.security.connections.total > 0 && Date.now() < deadline) await sleep(50)
    expect(running.broker.security.connections.total).toBe(0)
  }, 40_000)
})
