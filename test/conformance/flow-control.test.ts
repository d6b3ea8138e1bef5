import type { Packet } from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { useBroker } from '../helpers/in-process-broker.js'
import { sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'
import { storeConfigs } from '../helpers/stores.js'

// §4.9 flow control (Receive Maximum both ways) and §3.1.2.11.4 / §3.2.2.3.6 Maximum Packet Size.
describe.each(storeConfigs())('flow control and packet size ($name store)', ({ store }) => {
  const { running, pool } = useBroker(() => ({ store: store(), mqtt: { receiveMaximum: 3, maxPacketSize: 1000 } }))
  const raws: RawClient[] = []
  afterEach(() => {
    for (const r of raws.splice(0)) r.close()
  })

  const publishes = (client: RawClient) => client.received.filter((p): p is Packet & { cmd: 'publish'; messageId: number; payload: Buffer } => p.cmd === 'publish')

  async function rawV5(clientId: string, properties: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<RawClient> {
    const client = await rawConnect(running.port, 5)
    raws.push(client)
    client.send(connectPacket(clientId, { protocolVersion: 5, properties, ...extra }))
    await client.next((p) => p.cmd === 'connack')
    return client
  }

  it('[MQTT-3.3.4-9] sends no more unacknowledged QoS 1 messages than the client Receive Maximum', async () => {
    const sub = await rawV5('rm-live', { receiveMaximum: 2 })
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rm/live', qos: 1 }] })
    await sub.next((p) => p.cmd === 'suback')
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    for (let i = 0; i < 5; i++) await pub.publishAsync('rm/live', `m${i}`, { qos: 1 })
    await sleep(300)
    expect(publishes(sub).map((p) => p.payload.toString())).toEqual(['m0', 'm1'])
    sub.send({ cmd: 'puback', messageId: publishes(sub)[0]!.messageId })
    await sleep(200)
    expect(publishes(sub)).toHaveLength(3)
    for (const p of publishes(sub).slice(1)) sub.send({ cmd: 'puback', messageId: p.messageId })
    await sleep(200)
    for (const p of publishes(sub).slice(3)) sub.send({ cmd: 'puback', messageId: p.messageId })
    await sleep(200)
    expect(publishes(sub).map((p) => p.payload.toString())).toEqual(['m0', 'm1', 'm2', 'm3', 'm4'])
  })

  it('[MQTT-3.3.4-9] paces the queue of a resumed session by the Receive Maximum', async () => {
    const props = { receiveMaximum: 2, sessionExpiryInterval: 60 }
    const first = await rawV5('rm-queue', props, { clean: false })
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rm/queue', qos: 1 }] })
    await first.next((p) => p.cmd === 'suback')
    first.send({ cmd: 'disconnect' })
    await first.closed
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    for (let i = 0; i < 4; i++) await pub.publishAsync('rm/queue', `q${i}`, { qos: 1 })

    const back = await rawV5('rm-queue', props, { clean: false })
    await sleep(300)
    expect(publishes(back).map((p) => p.payload.toString())).toEqual(['q0', 'q1'])
    for (const p of publishes(back)) back.send({ cmd: 'puback', messageId: p.messageId })
    await sleep(300)
    expect(publishes(back).map((p) => p.payload.toString())).toEqual(['q0', 'q1', 'q2', 'q3'])
  })

  it('does not spend the window on queued messages that are dropped instead of sent', async () => {
    const props = { receiveMaximum: 2, sessionExpiryInterval: 60 }
    const first = await rawV5('rm-expired', props, { clean: false })
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rm/expired', qos: 1 }] })
    await first.next((p) => p.cmd === 'suback')
    first.send({ cmd: 'disconnect' })
    await first.closed
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    for (let i = 0; i < 3; i++) await pub.publishAsync('rm/expired', `gone${i}`, { qos: 1, properties: { messageExpiryInterval: 1 } })
    await sleep(1200)
    const back = await rawV5('rm-expired', props, { clean: false })
    await pub.publishAsync('rm/expired', 'live', { qos: 1 })
    const live = await back.next((p) => p.cmd === 'publish')
    expect((live as { payload: Buffer }).payload.toString()).toBe('live')
  })

  it('[MQTT-3.3.4-7] advertises its Receive Maximum and disconnects a client exceeding it with 0x93', async () => {
    const client = await rawConnect(running.port, 5)
    raws.push(client)
    client.send(connectPacket('rm-inbound', { protocolVersion: 5 }))
    const connack = (await client.next((p) => p.cmd === 'connack')) as { properties?: { receiveMaximum?: number } }
    expect(connack.properties?.receiveMaximum).toBe(3)
    for (let id = 1; id <= 4; id++) {
      client.send({ cmd: 'publish', topic: 'rm/in', payload: Buffer.from('x'), qos: 2, messageId: id, retain: false, dup: false })
    }
    expect(await client.next((p) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x93 })
    await client.closed
  })

  it('accepts a client that stays within the Receive Maximum', async () => {
    const client = await rawV5('rm-polite', {})
    for (let round = 0; round < 3; round++) {
      for (let id = 1; id <= 3; id++) {
        client.send({ cmd: 'publish', topic: 'rm/polite', payload: Buffer.from('x'), qos: 2, messageId: id, retain: false, dup: false })
      }
      for (let id = 1; id <= 3; id++) {
        await client.next((p) => p.cmd === 'pubrec' && p.messageId === id)
        client.send({ cmd: 'pubrel', messageId: id })
        await client.next((p) => p.cmd === 'pubcomp' && p.messageId === id)
      }
      client.received.length = 0
    }
    expect(client.socket.destroyed).toBe(false)
  })

  it('[MQTT-3.1.2-25] never sends a packet larger than the client Maximum Packet Size, as if delivered', async () => {
    const props = { maximumPacketSize: 100, sessionExpiryInterval: 60 }
    const sub = await rawV5('mps', props, { clean: false })
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'mps/t', qos: 1 }] })
    await sub.next((p) => p.cmd === 'suback')
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync('mps/t', Buffer.alloc(200, 1), { qos: 1 })
    await pub.publishAsync('mps/t', 'small', { qos: 1 })
    const small = await sub.next((p) => p.cmd === 'publish')
    sub.send({ cmd: 'puback', messageId: (small as { messageId: number }).messageId })
    await sleep(200)
    expect(publishes(sub).map((p) => p.payload.toString())).toEqual(['small'])
    // "as if delivered": the big one is not waiting in the session either
    sub.send({ cmd: 'disconnect' })
    await sub.closed
    const back = await rawV5('mps', props, { clean: false })
    await sleep(300)
    expect(publishes(back)).toHaveLength(0)
  })

  it('[MQTT-3.2.2-15] advertises its Maximum Packet Size and answers a larger packet with DISCONNECT 0x95', async () => {
    const client = await rawConnect(running.port, 5)
    raws.push(client)
    client.send(connectPacket('mps-in', { protocolVersion: 5 }))
    const connack = (await client.next((p) => p.cmd === 'connack')) as { properties?: { maximumPacketSize?: number } }
    expect(connack.properties?.maximumPacketSize).toBe(1000)
    client.send({ cmd: 'publish', topic: 'mps/in', payload: Buffer.alloc(2000), qos: 0, retain: false, dup: false })
    expect(await client.next((p) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x95 })
  })
})
