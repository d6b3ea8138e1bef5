import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { allowAllAuthorizer, type Authorizer } from '../../src/auth/authorizer.js'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { collectMessages, createClientPool, sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'
import { storeConfigs } from '../helpers/stores.js'

// Regression tests for the remote crashes and the authorization bypass of the aedes 2.0.0-beta.1
// pre-release (see src/broker/hardening.ts). A crash here fails the run: vitest reports any
// unhandled error or rejection.

const spyAuthorizer: Authorizer = {
  ...allowAllAuthorizer,
  canSubscribe: (client, filter) => !(client.id === 'spy' && filter.startsWith('secret/')),
}

describe.each(storeConfigs())('hardening on the $name store', ({ store }) => {
  let running: RunningBroker
  const pool = createClientPool()
  const raws: RawClient[] = []
  const raw = async (version: 4 | 5 = 4): Promise<RawClient> => {
    const client = await rawConnect(running.port, version)
    raws.push(client)
    return client
  }
  beforeAll(async () => {
    running = await startBroker({ store: store() }, { authorizer: spyAuthorizer })
  })
  afterEach(async () => {
    for (const r of raws.splice(0)) r.close()
    await pool.closeAll()
  })
  afterAll(() => running?.close())

  /** The broker still does its job for an ordinary client. */
  async function assertServing(): Promise<void> {
    const sub = await pool.connect(running.url)
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('alive/check', { qos: 1 })
    await sub.publishAsync('alive/check', 'yes', { qos: 1 })
    await inbox.waitFor(1)
  }

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])(
    'accepts client id %s and takes its session over like any other',
    async (clientId) => {
      const first = await raw()
      first.send(connectPacket(clientId))
      expect(await first.next((p) => p.cmd === 'connack')).toMatchObject({ returnCode: 0 })
      const second = await raw()
      second.send(connectPacket(clientId))
      expect(await second.next((p) => p.cmd === 'connack')).toMatchObject({ returnCode: 0 })
      await first.closed // [MQTT-3.1.4-2] the older connection is closed
      await assertServing()
    },
  )

  it.each(['constructor', '__proto__', 'toString'])('handles SUBSCRIBE and UNSUBSCRIBE to topic %s', async (topic) => {
    const client = await raw()
    client.send(connectPacket(`sub-${topic}`))
    await client.next((p) => p.cmd === 'connack')
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] })
    expect(await client.next((p) => p.cmd === 'suback')).toMatchObject({ granted: [1] })
    client.send({ cmd: 'publish', topic, payload: Buffer.from('p'), qos: 0, retain: false, dup: false })
    expect(await client.next((p) => p.cmd === 'publish')).toMatchObject({ topic })
    client.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [topic] })
    await client.next((p) => p.cmd === 'unsuback')
    await assertServing()
  })

  it('answers two PUBRELs for one packet id in one segment without crashing', async () => {
    const client = await raw()
    client.send(connectPacket('double-pubrel'))
    await client.next((p) => p.cmd === 'connack')
    client.send({ cmd: 'publish', topic: 'dp/t', payload: Buffer.from('x'), qos: 2, messageId: 9, retain: false, dup: false })
    await client.next((p) => p.cmd === 'pubrec')
    client.sendTogether([
      { cmd: 'pubrel', messageId: 9 },
      { cmd: 'pubrel', messageId: 9 },
    ])
    await client.next((p) => p.cmd === 'pubcomp')
    await sleep(100)
    await assertServing()
  })

  it('discards what follows a DISCONNECT in the same segment', async () => {
    const watcher = await pool.connect(running.url)
    const inbox = collectMessages(watcher)
    await watcher.subscribeAsync('after/disconnect', { qos: 0 })
    const client = await raw()
    client.send(connectPacket('leaves-then-talks'))
    await client.next((p) => p.cmd === 'connack')
    // [MQTT-3.14.4-2] nothing may follow a DISCONNECT; the broker closes the connection at it
    client.sendTogether([
      { cmd: 'publish', topic: 'after/disconnect', payload: Buffer.from('before'), qos: 0, retain: false, dup: false },
      { cmd: 'disconnect' },
      { cmd: 'publish', topic: 'after/disconnect', payload: Buffer.from('after'), qos: 0, retain: false, dup: false },
    ])
    await client.closed
    await inbox.waitFor(1)
    await sleep(100)
    expect(inbox.messages.map((m) => m.payload.toString())).toEqual(['before'])
  })

  it('forgets incoming QoS 2 state when a clean session ends, so a reused packet id is a new message', async () => {
    const watcher = await pool.connect(running.url)
    const inbox = collectMessages(watcher)
    await watcher.subscribeAsync('qos2/reuse', { qos: 2 })

    const first = await raw()
    first.send(connectPacket('reuser'))
    await first.next((p) => p.cmd === 'connack')
    first.send({ cmd: 'publish', topic: 'qos2/reuse', payload: Buffer.from('one'), qos: 2, messageId: 7, retain: false, dup: false })
    await first.next((p) => p.cmd === 'pubrec')
    first.close() // gone before PUBREL: the id stays "in flight" in the old session
    await first.closed
    await sleep(100)

    const second = await raw()
    second.send(connectPacket('reuser'))
    await second.next((p) => p.cmd === 'connack')
    second.send({ cmd: 'publish', topic: 'qos2/reuse', payload: Buffer.from('two'), qos: 2, messageId: 7, retain: false, dup: false })
    await second.next((p) => p.cmd === 'pubrec')
    second.send({ cmd: 'pubrel', messageId: 7 })
    await second.next((p) => p.cmd === 'pubcomp')
    const msgs = await inbox.waitFor(2)
    expect(msgs.map((m) => m.payload.toString())).toEqual(['one', 'two'])
  })

  it('never persists a denied subscription nor delivers its offline messages', async () => {
    const spy = await raw()
    spy.send(connectPacket('spy', { clean: false }))
    await spy.next((p) => p.cmd === 'connack')
    spy.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ok/t', qos: 1 }, { topic: 'secret/#', qos: 1 }] })
    expect(await spy.next((p) => p.cmd === 'suback')).toMatchObject({ granted: [1, 128] })
    spy.send({ cmd: 'disconnect' })
    await spy.closed

    const pub = await pool.connect(running.url)
    await pub.publishAsync('secret/plans', 'classified', { qos: 1 })
    await pub.publishAsync('ok/t', 'public', { qos: 1 })

    const back = await raw()
    back.send(connectPacket('spy', { clean: false }))
    expect(await back.next((p) => p.cmd === 'connack')).toMatchObject({ sessionPresent: true })
    await back.next((p) => p.cmd === 'publish')
    await sleep(300)
    const topics = back.received.filter((p) => p.cmd === 'publish').map((p) => (p as { topic: string }).topic)
    expect(topics).toEqual(['ok/t'])
  })
})
