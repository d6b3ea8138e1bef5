import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { aedesStore, useBroker } from '../helpers/in-process-broker.js'
import { collectMessages, sleep } from '../helpers/mqtt-clients.js'
import { storeConfigs } from '../helpers/stores.js'

// The protocol basics, end to end over TCP, for every store and both main protocol versions.
describe.each(storeConfigs())('publish/subscribe on the $name store', ({ store }) => {
  const { running, pool } = useBroker(() => ({ store: store() }))

  describe.each([4, 5] as const)('MQTT protocol version %i', (protocolVersion) => {
    const connect = (options: Parameters<typeof pool.connect>[1] = {}) =>
      pool.connect(running.url, { protocolVersion, ...options })

    it.each([0, 1, 2] as const)('round-trips a QoS %i message at that QoS', async (qos) => {
      const sub = await connect()
      const inbox = collectMessages(sub)
      await sub.subscribeAsync(`rt/${protocolVersion}/${qos}`, { qos })
      const pub = await connect()
      await pub.publishAsync(`rt/${protocolVersion}/${qos}`, `hello ${qos}`, { qos })
      const [msg] = await inbox.waitFor(1)
      expect(msg?.payload.toString()).toBe(`hello ${qos}`)
      expect(msg?.packet.qos).toBe(qos)
    })

    // A burst fans out with many packets per connection per event-loop turn: each write's
    // callback (which tells aedes's emitter that the delivery is done, so later messages go out)
    // comes from the turn's flush, so a lost or reordered one stalls or scrambles this.
    it.each([0, 1] as const)('fans a QoS %i burst out to many subscribers whole and in order', async (qos) => {
      const topic = `burst/${protocolVersion}/${qos}`
      const total = 400
      const subscribers = await Promise.all(Array.from({ length: 10 }, () => connect()))
      const inboxes = subscribers.map((sub) => collectMessages(sub))
      await Promise.all(subscribers.map((sub) => sub.subscribeAsync(topic, { qos })))
      const pub = await connect()
      await Promise.all(Array.from({ length: total }, (_, i) => pub.publishAsync(topic, String(i), { qos })))
      for (const inbox of inboxes) {
        await inbox.waitFor(total, 10_000)
        expect(inbox.messages.map((m) => Number(m.payload.toString()))).toEqual(Array.from({ length: total }, (_, i) => i))
      }
    })

    it('downgrades delivery to the granted QoS', async () => {
      const sub = await connect()
      const inbox = collectMessages(sub)
      await sub.subscribeAsync(`down/${protocolVersion}`, { qos: 1 })
      const pub = await connect()
      await pub.publishAsync(`down/${protocolVersion}`, 'x', { qos: 2 })
      const [msg] = await inbox.waitFor(1)
      expect(msg?.packet.qos).toBe(1)
    })

    it('sets, replaces, delivers on subscribe and clears retained messages', async () => {
      const topic = `retained/${protocolVersion}`
      const pub = await connect()
      await pub.publishAsync(topic, 'first', { qos: 1, retain: true })
      await pub.publishAsync(topic, 'second', { qos: 1, retain: true })

      const late = await connect()
      const inbox = collectMessages(late)
      await late.subscribeAsync(topic, { qos: 1 })
      const [msg] = await inbox.waitFor(1)
      expect(msg?.payload.toString()).toBe('second')
      expect(msg?.packet.retain).toBe(true)

      await pub.publishAsync(topic, '', { qos: 1, retain: true })
      const after = await connect()
      const afterInbox = collectMessages(after)
      await after.subscribeAsync(topic, { qos: 1 })
      await sleep(200)
      expect(afterInbox.messages).toHaveLength(0)
    })

    // Retained messages go out many at a time (not one per event-loop turn): all of them, once
    // each, also when the client's Receive Maximum holds most of them back.
    it('delivers every one of many retained messages once to a wildcard subscriber', async () => {
      const prefix = `many-retained/${protocolVersion}`
      const total = 300
      const pub = await connect()
      await Promise.all(Array.from({ length: total }, (_, i) => pub.publishAsync(`${prefix}/${i % 7}/${i}`, String(i), { qos: 1, retain: true })))
      const sub = await connect(protocolVersion === 5 ? { properties: { receiveMaximum: 5 } } : {})
      const inbox = collectMessages(sub)
      await sub.subscribeAsync(`${prefix}/#`, { qos: 1 })
      await inbox.waitFor(total, 10_000)
      await sleep(200) // nothing more comes
      const payloads = inbox.messages.map((m) => Number(m.payload.toString()))
      expect(payloads.sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i))
      expect(inbox.messages.every((m) => m.packet.retain)).toBe(true)
    })

    it('survives a retained-message stream that fails, and keeps serving the subscriber', async () => {
      const store = aedesStore<{ createRetainedStreamCombi(patterns: string[]): Readable }>(running.broker)
      const original = store.createRetainedStreamCombi
      store.createRetainedStreamCombi = () =>
        Readable.from(
          (async function* failing(): AsyncGenerator<never> {
            throw new Error('store read failed')
          })(),
        )
      const sub = await connect()
      const inbox = collectMessages(sub)
      try {
        await sub.subscribeAsync(`failing-retained/${protocolVersion}`, { qos: 1 })
      } finally {
        store.createRetainedStreamCombi = original
      }
      const pub = await connect()
      await pub.publishAsync(`failing-retained/${protocolVersion}`, 'live', { qos: 1 })
      const [msg] = await inbox.waitFor(1)
      expect(msg?.payload.toString()).toBe('live')
    })

    it('matches + and # wildcards but never $-topics at the first level', async () => {
      const sub = await connect()
      const inbox = collectMessages(sub)
      await sub.subscribeAsync([`wild${protocolVersion}/+/temp`, `wild${protocolVersion}/#`, '#', '+/x'], { qos: 0 })
      const pub = await connect()
      await pub.publishAsync(`wild${protocolVersion}/a/temp`, '1')
      await pub.publishAsync('$internal/x', 'hidden')
      await inbox.waitFor(1)
      await sleep(200)
      const topics = inbox.messages.map((m) => m.topic)
      expect(topics).toContain(`wild${protocolVersion}/a/temp`)
      expect(topics).not.toContain('$internal/x')
    })

    it('publishes the will when the connection drops without DISCONNECT', async () => {
      const topic = `will/${protocolVersion}`
      const watcher = await connect()
      const inbox = collectMessages(watcher)
      await watcher.subscribeAsync(topic, { qos: 1 })
      const dying = await connect({ will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } })
      dying.stream.destroy()
      const [msg] = await inbox.waitFor(1)
      expect(msg?.payload.toString()).toBe('gone')
    })

    it('does not publish the will after a normal DISCONNECT', async () => {
      const topic = `nowill/${protocolVersion}`
      const watcher = await connect()
      const inbox = collectMessages(watcher)
      await watcher.subscribeAsync(topic, { qos: 1 })
      const leaving = await connect({ will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } })
      await leaving.endAsync()
      await sleep(300)
      expect(inbox.messages).toHaveLength(0)
    })

    it('queues QoS 1 and 2 messages for an offline persistent session', async () => {
      const clientId = `persistent-${protocolVersion}-${Date.now()}`
      const topic = `queue/${protocolVersion}`
      const session =
        protocolVersion === 5
          ? { clean: false, properties: { sessionExpiryInterval: 300 } }
          : { clean: false }
      const first = await connect({ clientId, ...session })
      await first.subscribeAsync(topic, { qos: 2 })
      await first.endAsync()

      const pub = await connect()
      await pub.publishAsync(topic, 'q1', { qos: 1 })
      await pub.publishAsync(topic, 'q2', { qos: 2 })

      const back = pool.raw(running.url, { protocolVersion, clientId, ...session })
      const inbox = collectMessages(back)
      const [connack] = (await new Promise<[{ sessionPresent: boolean }]>((resolve) => back.once('connect', (p) => resolve([p]))))
      expect(connack.sessionPresent).toBe(true)
      const msgs = await inbox.waitFor(2)
      expect(msgs.map((m) => [m.payload.toString(), m.packet.qos])).toEqual([
        ['q1', 1],
        ['q2', 2],
      ])
    })

    // [MQTT-3.3.1-3] a copy is flagged DUP only when the server sends it again; [MQTT-3.3.1-2]
    // never at QoS 0. A publisher's retransmission (DUP 1) is a first send to each subscriber.
    it('does not pass a publisher\'s DUP flag on: live, retained and queued copies', async () => {
      const clientId = `dup-${protocolVersion}-${Date.now()}`
      const topic = `dup/${protocolVersion}`
      const session = protocolVersion === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false }
      const queued = await connect({ clientId, ...session })
      await queued.subscribeAsync(`${topic}/#`, { qos: 2 })
      await queued.endAsync()
      const live = await connect()
      const liveInbox = collectMessages(live)
      await live.subscribeAsync(`${topic}/#`, { qos: 2 })

      const pub = await connect()
      for (const qos of [0, 1, 2] as const) await pub.publishAsync(`${topic}/${qos}`, `q${qos}`, { qos, dup: true, retain: true })
      const late = await connect()
      const retainedInbox = collectMessages(late)
      await late.subscribeAsync(`${topic}/#`, { qos: 2 })
      const back = await connect({ clientId, ...session })
      const queuedInbox = collectMessages(back)

      const flags = (msgs: Array<{ packet: { qos: number; dup: boolean } }>) => msgs.map((m) => [m.packet.qos, m.packet.dup])
      expect(flags(await liveInbox.waitFor(3))).toEqual([[0, false], [1, false], [2, false]])
      expect(flags(await retainedInbox.waitFor(3))).toEqual([[0, false], [1, false], [2, false]])
      // QoS 0 is not queued for an offline session
      expect(flags(await queuedInbox.waitFor(2))).toEqual([[1, false], [2, false]])
    })

    it('starts a clean session without the old subscriptions', async () => {
      const clientId = `clean-${protocolVersion}-${Date.now()}`
      const persistent = protocolVersion === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false }
      const first = await connect({ clientId, ...persistent })
      await first.subscribeAsync(`clean/${protocolVersion}`, { qos: 1 })
      await first.endAsync()
      const fresh = pool.raw(running.url, { protocolVersion, clientId, clean: true })
      const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => fresh.once('connect', resolve))
      expect(connack.sessionPresent).toBe(false)
      const inbox = collectMessages(fresh)
      const pub = await connect()
      await pub.publishAsync(`clean/${protocolVersion}`, 'x', { qos: 1 })
      await sleep(300)
      expect(inbox.messages).toHaveLength(0)
    })
  })

  it('serves MQTT 3.1 (MQIsdp) clients', async () => {
    const sub = await pool.connect(running.url, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'v31-sub' })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('v31/t', { qos: 1 })
    const pub = await pool.connect(running.url, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'v31-pub' })
    await pub.publishAsync('v31/t', 'old but gold', { qos: 1 })
    const [msg] = await inbox.waitFor(1)
    expect(msg?.payload.toString()).toBe('old but gold')
  })

  it('delivers between a v3.1.1 publisher and a v5 subscriber with properties intact', async () => {
    const sub = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('mixed/t', { qos: 1 })
    const pub5 = await pool.connect(running.url, { protocolVersion: 5 })
    await pub5.publishAsync('mixed/t', 'v5', {
      qos: 1,
      properties: { userProperties: { site: 'a' }, contentType: 'text/plain', responseTopic: 'reply/here', correlationData: Buffer.from('c1') },
    })
    const pub4 = await pool.connect(running.url, { protocolVersion: 4 })
    await pub4.publishAsync('mixed/t', 'v4', { qos: 1 })
    const msgs = await inbox.waitFor(2)
    const v5 = msgs.find((m) => m.payload.toString() === 'v5')
    expect(v5?.packet.properties?.userProperties).toEqual({ site: 'a' })
    expect(v5?.packet.properties?.contentType).toBe('text/plain')
    expect(v5?.packet.properties?.responseTopic).toBe('reply/here')
    expect(v5?.packet.properties?.correlationData?.toString()).toBe('c1')
  })
})
