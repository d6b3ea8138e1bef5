import type { Client } from 'aedes'
import { describe, expect, it, vi } from 'vitest'
import { aedesStore, useBroker } from '../helpers/in-process-broker.js'
import { collectMessages, sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'
import { storeConfigs } from '../helpers/stores.js'

// The queue a session finds at CONNECT is drained by aedes's emptyQueue (patched, see
// patches/aedes+2.0.0-beta.1.patch). Unpatched, it ran the queue through a stream.pipeline into a
// Transform whose output nobody read: each record the drain dropped (expired, no longer readable,
// old session) was pushed to that output, and after 16 of them the drain stopped for good. The
// session then never became ready and its live messages stayed held behind the drain.
describe.each(storeConfigs())('queue drain at CONNECT ($name store)', ({ store }) => {
  const { running, pool } = useBroker(() => ({ store: store() }))

  const session = (clientId: string) => ({ protocolVersion: 5 as const, clientId, clean: false, properties: { sessionExpiryInterval: 60 } })
  /** A bare 3.1.1 connection resuming the persistent session `clientId`, past its CONNACK. */
  const rawSession = async (clientId: string) => {
    const raw = await rawConnect(running.port, 4)
    raw.send(connectPacket(clientId, { clean: false }))
    await raw.next((p) => p.cmd === 'connack')
    return raw
  }
  /**
   * Answers a QoS 2 PUBLISH with PUBREC, takes its PUBREL and leaves without PUBCOMP: the
   * session's next connection gets that PUBREL again [MQTT-4.4.0-1], and not the PUBLISH.
   */
  const leaveBeforePubcomp = async (raw: RawClient, clientId: string, messageId: number) => {
    raw.send({ cmd: 'pubrec', messageId })
    await raw.next((p) => p.cmd === 'pubrel')
    raw.close()
    await raw.closed
    const back = await rawSession(clientId)
    expect(await back.next((p) => p.cmd === 'pubrel')).toMatchObject({ messageId })
    back.send({ cmd: 'pubcomp', messageId })
    await sleep(300)
    expect(back.received.filter((p) => p.cmd === 'publish')).toEqual([])
    back.close()
  }
  /**
   * A persistent subscriber to `topic` that receives one QoS 1 message and never acknowledges
   * it; resolves once it has it, with the client and what it saw of the packet.
   */
  const unacknowledgedDelivery = async (clientId: string, topic: string, payload: string) => {
    const sub = await pool.connect(running.url, session(clientId))
    sub.on('error', () => {})
    await sub.subscribeAsync(topic, { qos: 1 })
    const got: Array<{ messageId?: number; dup: boolean }> = []
    sub.handleMessage = (packet) => void got.push({ messageId: packet.messageId, dup: packet.dup })
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync(topic, payload, { qos: 1 })
    await vi.waitFor(() => expect(got).toHaveLength(1))
    return { sub, first: got[0]! }
  }
  /**
   * Retains `topic` at `qos`, then subscribes a bare persistent session to it: resolves with that
   * connection and the retained PUBLISH it got at SUBSCRIBE, not acknowledged.
   */
  const retainedAtSubscribe = async (clientId: string, topic: string, qos: 1 | 2) => {
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync(topic, 'kept', { qos, retain: true })
    const first = await rawSession(clientId)
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] })
    const publish = (await first.next((p) => p.cmd === 'publish')) as { messageId: number; retain: boolean }
    return { first, publish }
  }
  /** The session's next connection finds nothing to send. */
  const expectNothingLeft = async (clientId: string) => {
    const raw = await rawSession(clientId)
    await sleep(300)
    expect(raw.received.map((p) => p.cmd)).toEqual(['connack'])
    raw.close()
  }
  /** Leaves a persistent session subscribed to `topic` offline; resolves with a publisher. */
  const offlineSession = async (clientId: string, topic: string, qos: 1 | 2) => {
    const away = await pool.connect(running.url, session(clientId))
    await away.subscribeAsync(topic, { qos })
    await away.endAsync()
    return pool.connect(running.url, { protocolVersion: 5 })
  }

  it('gets through a queue of many expired messages and then delivers live ones', async () => {
    const pub = await offlineSession('drain-expired', 'drain/q', 1)
    for (let i = 0; i < 40; i++) await pub.publishAsync('drain/q', `old-${i}`, { qos: 1, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync('drain/q', 'kept', { qos: 1, properties: { messageExpiryInterval: 120 } })
    await sleep(2100)
    const back = pool.raw(running.url, session('drain-expired'))
    const inbox = collectMessages(back)
    await inbox.waitFor(1)
    await pub.publishAsync('drain/q', 'live', { qos: 1 })
    await inbox.waitFor(2, 3000)
    expect(inbox.messages.map((m) => m.payload.toString())).toEqual(['kept', 'live'])
  })

  it('[MQTT-4.4.0-1, MQTT-3.3.1-1] sends an unacknowledged message again under its packet id, flagged DUP', async () => {
    const clientId = 'drain-dup'
    const { sub, first } = await unacknowledgedDelivery(clientId, 'drain/dup', 'once')
    sub.end(true)
    const inbox = collectMessages(pool.raw(running.url, session(clientId)))
    const [again] = await inbox.waitFor(1)
    expect([first.dup, again!.payload.toString(), again!.packet.messageId, again!.packet.dup]).toEqual([false, 'once', first.messageId, true])
  })

  // A live message for a connected persistent session may wait in memory for its PUBACK (the
  // SQLite store's ack window); one its Receive Maximum keeps back is written meanwhile.
  it('a slow persistent subscriber behind its Receive Maximum gets every live message once, in order', async () => {
    const clientId = 'drain-slow'
    const options = { ...session(clientId), properties: { sessionExpiryInterval: 60, receiveMaximum: 2 } }
    const sub = await pool.connect(running.url, options)
    await sub.subscribeAsync('drain/slow', { qos: 1 })
    const got: string[] = []
    sub.handleMessage = (packet, callback) => {
      got.push(packet.payload.toString())
      setTimeout(callback, 5) // PUBACK 5 ms later
    }
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    const total = 60
    await Promise.all(Array.from({ length: total }, (_, i) => pub.publishAsync('drain/slow', String(i), { qos: 1 })))
    await vi.waitFor(() => expect(got).toHaveLength(total), { timeout: 5000 })
    await sleep(100) // the last PUBACKs
    expect(got).toEqual(Array.from({ length: total }, (_, i) => String(i)))
    await sub.endAsync()
    const again = collectMessages(pool.raw(running.url, options))
    await sleep(500)
    expect(again.messages).toEqual([])
  })

  it('[MQTT-4.4.0-1] re-sends a PUBREL, not the PUBLISH, to a QoS 2 subscriber that left before PUBCOMP', async () => {
    const clientId = 'drain-pubrel'
    const first = await rawSession(clientId)
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'drain/q2', qos: 2 }] })
    await first.next((p) => p.cmd === 'suback')
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    const published = pub.publishAsync('drain/q2', 'exactly once', { qos: 2 })
    const publish = (await first.next((p) => p.cmd === 'publish')) as { messageId: number }
    await leaveBeforePubcomp(first, clientId, publish.messageId)
    await published
    // acknowledged at last: nothing is left for the next connection
    await expectNothingLeft(clientId)
  })

  it('[MQTT-3.1.4-3, MQTT-4.4.0-1] a session taken over hands its unacknowledged message to the new connection, DUP set', async () => {
    const clientId = 'drain-takeover'
    const { first } = await unacknowledgedDelivery(clientId, 'drain/takeover', 'job')
    const second = pool.raw(running.url, session(clientId))
    const inbox = collectMessages(second)
    const [again] = await inbox.waitFor(1)
    expect([again!.payload.toString(), again!.packet.messageId, again!.packet.dup]).toEqual(['job', first.messageId, true])
    await sleep(300)
    expect(inbox.messages).toHaveLength(1)
  })

  // aedes sent retained messages at SUBSCRIBE without storing them: a persistent session that
  // left before acknowledging one never got it (or its PUBREL) again
  it('[MQTT-4.4.0-1] a retained QoS 1 message sent at SUBSCRIBE and not acknowledged is sent again at reconnect', async () => {
    const clientId = 'drain-ret-q1'
    const { first, publish } = await retainedAtSubscribe(clientId, 'drain/retq1', 1)
    expect(publish.retain).toBe(true)
    first.close() // no PUBACK
    await first.closed

    const back = await rawSession(clientId)
    expect(await back.next((p) => p.cmd === 'publish')).toMatchObject({ messageId: publish.messageId, dup: true, payload: Buffer.from('kept') })
    back.send({ cmd: 'puback', messageId: publish.messageId })
    await sleep(200)
    back.close()
    await expectNothingLeft(clientId)
  })

  it('[MQTT-4.4.0-1] a retained QoS 2 message sent at SUBSCRIBE gets its PUBREL again when the session left before PUBCOMP', async () => {
    const clientId = 'drain-ret-q2'
    const { first, publish } = await retainedAtSubscribe(clientId, 'drain/retq2', 2)
    await leaveBeforePubcomp(first, clientId, publish.messageId)
    await expectNothingLeft(clientId)
  })

  it('retained messages at SUBSCRIBE to a persistent session: each once, and live ones still delivered', async () => {
    const clientId = 'drain-ret-many'
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    for (let i = 0; i < 20; i++) await pub.publishAsync(`drain/retmany/${i}`, String(i), { qos: 1, retain: true })
    const sub = await pool.connect(running.url, session(clientId))
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('drain/retmany/#', { qos: 1 })
    await inbox.waitFor(20)
    await pub.publishAsync('drain/retmany/live', 'live', { qos: 1 })
    await inbox.waitFor(21)
    await sleep(200)
    expect(inbox.messages.map((m) => m.payload.toString()).sort()).toEqual([...Array.from({ length: 20 }, (_, i) => String(i)), 'live'].sort())
    await sub.endAsync()
    const again = collectMessages(pool.raw(running.url, session(clientId)))
    await sleep(400)
    expect(again.messages).toEqual([])
  })

  // aedes stored no packet id for a PUBLISH with the retain flag, taking it for a retained message
  // sent at SUBSCRIBE (never queued): a live one under Retain As Published stayed in the queue
  it.each([1, 2] as const)('a live retained message that kept its flag [MQTT-3.3.1-13] is not sent again once acknowledged (QoS %i)', async (qos) => {
    const clientId = `drain-rap-${qos}`
    const sub = await pool.connect(running.url, session(clientId))
    await sub.subscribeAsync('drain/rap/#', { qos, rap: true })
    const live = collectMessages(sub)
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync('drain/rap/status', 'online', { qos, retain: true })
    const [got] = await live.waitFor(1)
    expect(got!.packet.retain).toBe(true)
    await sleep(100) // its PUBACK
    await sub.endAsync()
    const again = collectMessages(pool.raw(running.url, session(clientId)))
    await sleep(500)
    expect(again.messages).toEqual([])
  })

  // The drain keeps many records between their store update and their write (one commit and one
  // socket write for a batch instead of one each); the packets must still leave in queue order
  // when the updates settle out of order, and every one must be cleared by its acknowledgement.
  it('sends a backlog in queue order when its updates settle out of order, and clears it', async () => {
    const clientId = 'drain-order'
    const pub = await offlineSession(clientId, 'drain/order', 2)
    const total = 300
    // one after the other: a QoS 2 message is queued at its PUBREL, so concurrent ones would
    // be queued out of publish order
    for (let i = 0; i < total; i++) await pub.publishAsync('drain/order', String(i), { qos: i % 2 === 0 ? 1 : 2 })

    const persistence = aedesStore<{ outgoingUpdate(client: Client, packet: object): Promise<void> }>(running.broker)
    const update = persistence.outgoingUpdate
    let updates = 0
    persistence.outgoingUpdate = function delayed(this: unknown, client: Client, packet: object) {
      const settled = update.call(this, client, packet)
      // every seventh record settles 20 ms after the ones behind it
      return ++updates % 7 === 0 ? settled.then(() => sleep(20)) : settled
    }
    try {
      const back = pool.raw(running.url, session(clientId))
      // in the order the PUBLISH packets arrived (mqtt.js emits a QoS 2 message at its PUBREL)
      const arrived: Array<{ payload: string; qos: number }> = []
      back.on('packetreceive', (packet) => {
        if (packet.cmd === 'publish') arrived.push({ payload: packet.payload.toString(), qos: packet.qos })
      })
      const inbox = collectMessages(back)
      await inbox.waitFor(total, 10_000)
      expect(arrived).toEqual(Array.from({ length: total }, (_, i) => ({ payload: String(i), qos: i % 2 === 0 ? 1 : 2 })))
      await sleep(200) // the last acknowledgements
      back.end(true)
    } finally {
      persistence.outgoingUpdate = update
    }
    const again = pool.raw(running.url, session(clientId))
    const rest = collectMessages(again)
    await sleep(500)
    expect(rest.messages).toHaveLength(0)
  })

  // Live messages wait until the stored queue has been written, not only read: the last batch of
  // queued messages is still between its store updates and its writes when the store's stream ends.
  it('sends a message published during the drain after every queued one', async () => {
    const clientId = 'drain-then-live'
    const pub = await offlineSession(clientId, 'drain/live', 1)
    const total = 300
    for (let i = 0; i < total; i++) await pub.publishAsync('drain/live', String(i), { qos: 1 })

    const persistence = aedesStore<{ outgoingUpdate(client: Client, packet: object): Promise<void> }>(running.broker)
    const update = persistence.outgoingUpdate
    // the queue's updates settle slowly, so the drain is still writing when the live message comes
    persistence.outgoingUpdate = function slow(this: unknown, client: Client, packet: object) {
      return update.call(this, client, packet).then(() => sleep(5))
    }
    try {
      const back = pool.raw(running.url, session(clientId))
      const inbox = collectMessages(back)
      await new Promise<void>((resolve) => back.once('connect', () => resolve()))
      await pub.publishAsync('drain/live', 'live', { qos: 1 })
      await inbox.waitFor(total + 1, 10_000)
      expect(inbox.messages.map((m) => m.payload.toString())).toEqual([...Array.from({ length: total }, (_, i) => String(i)), 'live'])
    } finally {
      persistence.outgoingUpdate = update
    }
  })

  // The connection drops in the middle of its backlog (a Receive Maximum of 50 keeps the drain
  // waiting for acknowledgements): what the client acknowledged is gone, everything else comes
  // again when it is back, in order.
  it('a subscriber that leaves in the middle of its backlog gets the unacknowledged rest when it is back', async () => {
    const clientId = 'drain-resume'
    const pub = await offlineSession(clientId, 'drain/resume', 1)
    const total = 1000
    for (let i = 0; i < total; i++) await pub.publishAsync('drain/resume', String(i), { qos: 1 })

    const raw = await rawConnect(running.port, 5)
    raw.send(connectPacket(clientId, { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 50 } }))
    const acked: number[] = []
    while (acked.length < 300) {
      const publish = (await raw.next((p) => p.cmd === 'publish' && !acked.includes(Number(p.payload.toString())), 5000)) as { payload: Buffer; messageId: number }
      acked.push(Number(publish.payload.toString()))
      raw.send({ cmd: 'puback', messageId: publish.messageId, reasonCode: 0 })
    }
    await sleep(200)
    const sentBeforeLeaving = raw.received.filter((p) => p.cmd === 'publish').length
    raw.close() // abruptly, 50 messages unacknowledged and the rest of the queue still stored
    await raw.closed

    const back = pool.raw(running.url, session(clientId))
    const inbox = collectMessages(back)
    await inbox.waitFor(total - 300, 10_000)
    await sleep(300) // nothing more comes
    expect(sentBeforeLeaving).toBe(350)
    expect(acked).toEqual(Array.from({ length: 300 }, (_, i) => i))
    expect(inbox.messages.map((m) => Number(m.payload.toString()))).toEqual(Array.from({ length: total - 300 }, (_, i) => 300 + i))
  })
})
