import { afterEach, describe, expect, it } from 'vitest'
import { useBroker } from '../helpers/in-process-broker.js'
import { collectMessages, sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'
import { storeConfigs } from '../helpers/stores.js'

// Reason codes (§2.4), topic aliases (§3.3.2.3.4) and request/response (§4.10), on the wire.
describe.each(storeConfigs())('reason codes, topic aliases, request/response ($name store)', ({ store }) => {
  const { running, pool } = useBroker(() => ({ store: store(), mqtt: { topicAliasMaximum: 4, maxKeepAlive: 2 } }))
  const raws: RawClient[] = []
  afterEach(() => {
    for (const r of raws.splice(0)) r.close()
  })

  async function raw(clientId: string, version: 4 | 5 = 5, extra: Record<string, unknown> = {}): Promise<RawClient> {
    const client = await rawConnect(running.port, version)
    raws.push(client)
    client.send(connectPacket(clientId, { protocolVersion: version, ...extra }))
    await client.next((p) => p.cmd === 'connack')
    return client
  }

  it('[MQTT-3.4.2-...] PUBACK and PUBREC carry 0x10 when no subscriber matched (MQTT 5 only)', async () => {
    const v5 = await raw('nobody-listens')
    v5.send({ cmd: 'publish', topic: 'void/1', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    expect(await v5.next((p) => p.cmd === 'puback')).toMatchObject({ reasonCode: 0x10 })
    v5.send({ cmd: 'publish', topic: 'void/2', payload: Buffer.from('x'), qos: 2, messageId: 2, retain: false, dup: false })
    expect(await v5.next((p) => p.cmd === 'pubrec')).toMatchObject({ reasonCode: 0x10 })

    const listener = await pool.connect(running.url, { protocolVersion: 5 })
    await listener.subscribeAsync('heard/+', { qos: 1 })
    v5.send({ cmd: 'publish', topic: 'heard/1', payload: Buffer.from('x'), qos: 1, messageId: 3, retain: false, dup: false })
    const ack = await v5.next((p) => p.cmd === 'puback' && p.messageId === 3)
    expect((ack as { reasonCode?: number }).reasonCode ?? 0).toBe(0)

    const v4 = await raw('nobody-listens-v4', 4)
    v4.send({ cmd: 'publish', topic: 'void/3', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    await v4.next((p) => p.cmd === 'puback')
  })

  it('an offline persistent session counts as a matching subscriber', async () => {
    const session = { protocolVersion: 5 as const, clientId: `away-${Date.now()}`, clean: false, properties: { sessionExpiryInterval: 60 } }
    const away = await pool.connect(running.url, session)
    await away.subscribeAsync('away/t', { qos: 1 })
    await away.endAsync()
    const pub = await raw('to-the-away')
    pub.send({ cmd: 'publish', topic: 'away/t', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    const ack = await pub.next((p) => p.cmd === 'puback')
    expect((ack as { reasonCode?: number }).reasonCode ?? 0).toBe(0)
  })

  it('[MQTT-3.3.2-...] sends a topic name once, then the alias, up to the client Topic Alias Maximum', async () => {
    const sub = await raw('alias-out', 5, { properties: { topicAliasMaximum: 1 } })
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'alias/+', qos: 0 }] })
    await sub.next((p) => p.cmd === 'suback')
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    for (const t of ['alias/a', 'alias/a', 'alias/b', 'alias/a']) await pub.publishAsync(t, 'x', { qos: 1 })
    await sleep(200)
    const seen = sub.received
      .filter((p) => p.cmd === 'publish')
      .map((p) => [(p as { topic: string }).topic, (p as { properties?: { topicAlias?: number } }).properties?.topicAlias])
    expect(seen).toEqual([
      ['alias/a', 1],
      ['', 1],
      ['alias/b', undefined],
      ['', 1],
    ])
  })

  it('mqtt.js receives aliased messages with their topic names', async () => {
    const sub = await pool.connect(running.url, { protocolVersion: 5, properties: { topicAliasMaximum: 10 } })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('alias2/#', { qos: 1 })
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    for (let i = 0; i < 3; i++) await pub.publishAsync('alias2/t', `m${i}`, { qos: 1 })
    await inbox.waitFor(3)
    expect(inbox.messages.map((m) => m.topic)).toEqual(['alias2/t', 'alias2/t', 'alias2/t'])
  })

  it('[MQTT-3.3.2-...] an inbound alias above the advertised maximum is answered with DISCONNECT 0x94', async () => {
    const client = await raw('alias-in')
    client.send({ cmd: 'publish', topic: 'ain/t', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { topicAlias: 5 } })
    expect(await client.next((p) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x94 })
  })

  it('resolves inbound aliases up to the maximum', async () => {
    const sub = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('ain2/t', { qos: 0 })
    const client = await raw('alias-in-ok')
    client.send({ cmd: 'publish', topic: 'ain2/t', payload: Buffer.from('1'), qos: 0, retain: false, dup: false, properties: { topicAlias: 4 } })
    client.send({ cmd: 'publish', topic: '', payload: Buffer.from('2'), qos: 0, retain: false, dup: false, properties: { topicAlias: 4 } })
    const msgs = await inbox.waitFor(2)
    expect(msgs.map((m) => [m.topic, m.payload.toString()])).toEqual([
      ['ain2/t', '1'],
      ['ain2/t', '2'],
    ])
  })

  it('[MQTT-3.3.2-14] a Response Topic with wildcards is a protocol error (DISCONNECT 0x82)', async () => {
    const client = await raw('bad-response-topic')
    client.send({ cmd: 'publish', topic: 'req/t', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { responseTopic: 'reply/#' } })
    expect(await client.next((p) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x82 })
  })

  it('[MQTT-3.3.2-2] a wildcard in a PUBLISH topic gets DISCONNECT 0x90', async () => {
    const client = await raw('wild-publish')
    client.send({ cmd: 'publish', topic: 'a/+', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    expect(await client.next((p) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x90 })
  })

  it('[MQTT-4.10] forwards Response Topic and Correlation Data for request/response', async () => {
    const responder = await pool.connect(running.url, { protocolVersion: 5 })
    await responder.subscribeAsync('svc/request', { qos: 1 })
    responder.on('message', (_t, payload, packet) => {
      const { responseTopic, correlationData } = packet.properties ?? {}
      if (responseTopic) responder.publish(responseTopic, `re:${payload.toString()}`, { qos: 1, properties: { correlationData } })
    })
    const requester = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(requester)
    await requester.subscribeAsync('svc/reply/me', { qos: 1 })
    await requester.publishAsync('svc/request', 'ping', {
      qos: 1,
      properties: { responseTopic: 'svc/reply/me', correlationData: Buffer.from('req-7') },
    })
    const [reply] = await inbox.waitFor(1)
    expect(reply?.payload.toString()).toBe('re:ping')
    expect(reply?.packet.properties?.correlationData?.toString()).toBe('req-7')
  })

  it('[MQTT-3.2.2-...] assigns a client identifier to an MQTT 5 client that sends none', async () => {
    const client = await rawConnect(running.port, 5)
    raws.push(client)
    client.send(connectPacket('', { protocolVersion: 5 }))
    const connack = (await client.next((p) => p.cmd === 'connack')) as { properties?: { assignedClientIdentifier?: string } }
    expect(connack.properties?.assignedClientIdentifier).toMatch(/.+/)
  })

  it('[MQTT-3.1.3-8] refuses an empty client id with Clean Session 0 from a 3.1.1 client with 0x02', async () => {
    const client = await rawConnect(running.port, 4)
    raws.push(client)
    // mqtt-packet refuses to encode this CONNECT, so the bytes are written by hand:
    // fixed header, protocol name "MQTT", level 4, flags 0x00 (Clean Session 0), keep-alive 60, empty id
    client.sendBytes(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 60, 0, 0]))
    expect(await client.next((p) => p.cmd === 'connack')).toMatchObject({ returnCode: 2 })
  })

  it('[MQTT-3.2.2-21] tells an MQTT 5 client the Server Keep Alive and holds it to it (DISCONNECT 0x8D)', async () => {
    const client = await rawConnect(running.port, 5)
    raws.push(client)
    client.send(connectPacket('keepalive-v5', { protocolVersion: 5, keepalive: 600 }))
    const connack = (await client.next((p) => p.cmd === 'connack')) as { properties?: { serverKeepAlive?: number } }
    expect(connack.properties?.serverKeepAlive).toBe(2)
    expect(await client.next((p) => p.cmd === 'disconnect', 5000)).toMatchObject({ reasonCode: 0x8d })
  })

  it('lets a 3.1.1 client with a longer keep-alive connect', async () => {
    const client = await rawConnect(running.port, 4)
    raws.push(client)
    client.send(connectPacket('keepalive-v4', { keepalive: 600 }))
    expect(await client.next((p) => p.cmd === 'connack')).toMatchObject({ returnCode: 0 })
  })

  it('[MQTT-3.14.2-...] DISCONNECT 0x8E to the older connection when a session is taken over', async () => {
    const first = await raw('taken-over')
    await raw('taken-over')
    expect(await first.next((p) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x8e })
  })

  it('forwards User Properties on PUBLISH', async () => {
    const sub = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('up/t', { qos: 1 })
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync('up/t', 'x', { qos: 1, properties: { userProperties: { a: '1', b: ['2', '3'] } } })
    const [msg] = await inbox.waitFor(1)
    expect(msg?.packet.properties?.userProperties).toEqual({ a: '1', b: ['2', '3'] })
  })
})
