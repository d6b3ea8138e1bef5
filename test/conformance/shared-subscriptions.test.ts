import type { MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { useBroker } from '../helpers/in-process-broker.js'
import { collectMessages, sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'
import { storeConfigs } from '../helpers/stores.js'

// §4.8.2 shared subscriptions, for MQTT 5 and 3.1.1 members.
describe.each(storeConfigs())('shared subscriptions ($name store)', ({ store }) => {
  const { running, pool } = useBroker(() => ({ store: store() }))
  const raws: RawClient[] = []
  afterEach(() => {
    for (const r of raws.splice(0)) r.close()
  })

  const publishN = async (topic: string, n: number, qos: 0 | 1 | 2 = 1) => {
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    for (let i = 0; i < n; i++) await pub.publishAsync(topic, `m${i}`, { qos })
  }

  it('[MQTT-3.2.2-...] advertises Shared Subscription Available', async () => {
    const c = pool.raw(running.url, { protocolVersion: 5 })
    const connack = await new Promise<{ properties?: Record<string, unknown> }>((resolve) => c.once('connect', resolve))
    expect(connack.properties?.sharedSubscriptionAvailable).toBe(true)
  })

  it.each([5, 4] as const)('[MQTT-4.8.2-...] gives each message to exactly one member, round robin (MQTT %i)', async (protocolVersion) => {
    const members: Array<{ client: MqttClient; inbox: ReturnType<typeof collectMessages> }> = []
    for (let i = 0; i < 3; i++) {
      const client = await pool.connect(running.url, { protocolVersion })
      const inbox = collectMessages(client)
      const granted = await client.subscribeAsync(`$share/g${protocolVersion}/rr/+`, { qos: 1 })
      expect(granted[0]?.qos).toBe(1)
      members.push({ client, inbox })
    }
    const plain = await pool.connect(running.url, { protocolVersion })
    const plainInbox = collectMessages(plain)
    await plain.subscribeAsync('rr/+', { qos: 1 })
    await publishN('rr/x', 9)
    await plainInbox.waitFor(9)
    await sleep(200)
    const counts = members.map((m) => m.inbox.messages.length)
    expect(counts).toEqual([3, 3, 3])
    const all = members.flatMap((m) => m.inbox.messages.map((x) => x.payload.toString())).sort()
    expect(all).toEqual(Array.from({ length: 9 }, (_, i) => `m${i}`).sort())
  })

  it('delivers to each member at its own granted QoS', async () => {
    const low = await pool.connect(running.url, { protocolVersion: 5 })
    const lowInbox = collectMessages(low)
    await low.subscribeAsync('$share/q/qos/t', { qos: 0 })
    const high = await pool.connect(running.url, { protocolVersion: 5 })
    const highInbox = collectMessages(high)
    await high.subscribeAsync('$share/q/qos/t', { qos: 2 })
    await publishN('qos/t', 4, 2)
    await sleep(300)
    expect(lowInbox.messages.map((m) => m.packet.qos)).toEqual([0, 0])
    expect(highInbox.messages.map((m) => m.packet.qos)).toEqual([2, 2])
  })

  it('skips a member whose Receive Maximum window is full', async () => {
    const slow = await rawConnect(running.port, 5)
    raws.push(slow)
    slow.send(connectPacket('slow-member', { protocolVersion: 5, properties: { receiveMaximum: 1 } }))
    await slow.next((p) => p.cmd === 'connack')
    slow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/w/win/t', qos: 1 }] })
    await slow.next((p) => p.cmd === 'suback')
    const fast = await pool.connect(running.url, { protocolVersion: 5 })
    const fastInbox = collectMessages(fast)
    await fast.subscribeAsync('$share/w/win/t', { qos: 1 })
    await publishN('win/t', 6)
    await sleep(300)
    // the slow member never acknowledges: it holds one message, the fast one takes the rest
    expect(slow.received.filter((p) => p.cmd === 'publish')).toHaveLength(1)
    expect(fastInbox.messages).toHaveLength(5)
  })

  it('hands unacknowledged messages of a member that disconnects to another member', async () => {
    const dying = await rawConnect(running.port, 5)
    raws.push(dying)
    dying.send(connectPacket('dying-member', { protocolVersion: 5 }))
    await dying.next((p) => p.cmd === 'connack')
    dying.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/d/handover/t', qos: 1 }] })
    await dying.next((p) => p.cmd === 'suback')
    const survivor = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(survivor)
    await survivor.subscribeAsync('$share/d/handover/t', { qos: 1 })
    await publishN('handover/t', 4)
    await sleep(200)
    const held = dying.received.filter((p) => p.cmd === 'publish').length
    expect(held).toBe(2)
    dying.close() // never acknowledged
    await inbox.waitFor(4)
    expect(inbox.messages.map((m) => m.payload.toString()).sort()).toEqual(['m0', 'm1', 'm2', 'm3'])
  })

  it('queues for a persistent member while every member is offline', async () => {
    const session = { protocolVersion: 5 as const, clientId: `share-persist-${Date.now()}`, clean: false, properties: { sessionExpiryInterval: 60 } }
    const member = await pool.connect(running.url, session)
    await member.subscribeAsync('$share/p/offline/t', { qos: 1 })
    await member.endAsync()
    await publishN('offline/t', 3)
    const back = pool.raw(running.url, session)
    const inbox = collectMessages(back)
    await inbox.waitFor(3)
    expect(inbox.messages.map((m) => m.payload.toString())).toEqual(['m0', 'm1', 'm2'])
  })

  it('delivers a message to both a shared and an ordinary subscription of the same client', async () => {
    const c = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(c)
    await c.subscribeAsync('both/t', { qos: 1 })
    await c.subscribeAsync('$share/b/both/t', { qos: 1 })
    await publishN('both/t', 1)
    await inbox.waitFor(2)
  })

  it.each([
    ['$share/g', 5, 0x8f],
    ['$share//t', 5, 0x8f],
    ['$share/g/', 5, 0x8f],
    ['$share/g', 4, 0x80],
  ] as const)('refuses the bad share name %s (MQTT %i) with reason code %i', async (topic, protocolVersion, code) => {
    const client = await rawConnect(running.port, protocolVersion)
    raws.push(client)
    client.send(connectPacket(`bad-share-${protocolVersion}`, { protocolVersion }))
    await client.next((p) => p.cmd === 'connack')
    client.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic, qos: 1 }] })
    expect(await client.next((p) => p.cmd === 'suback')).toMatchObject({ granted: [code] })
  })
})

describe('shared subscriptions switched off', () => {
  const { running, pool } = useBroker(() => ({ mqtt: { sharedSubscriptions: false } }))

  it('[MQTT-3.2.2-...] advertises them unavailable and refuses them with 0x9E', async () => {
    const c = pool.raw(running.url, { protocolVersion: 5 })
    const connack = await new Promise<{ properties?: Record<string, unknown> }>((resolve) => c.once('connect', resolve))
    expect(connack.properties?.sharedSubscriptionAvailable).toBe(false)
    await expect(c.subscribeAsync('$share/g/t', { qos: 1 })).rejects.toMatchObject({ packet: { granted: [0x9e] } })
  })
})
