import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Packet } from 'mqtt-packet'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { collectMessages, createClientPool, sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'
import { tempDir } from '../helpers/stores.js'

// Password file (Mosquitto $7$ and $6$ hashes next to mqlite's scrypt ones) and a Mosquitto ACL
// file, over real sockets, for MQTT 3.1.1 and 5. Users, passwords and rules are in
// test/fixtures/security/.

const FIXTURES = fileURLToPath(new URL('../fixtures/security/', import.meta.url))
const FAILURE_DELAY = 150

function passwordFile(): string {
  const file = join(tempDir('mqlite-auth-'), 'passwd')
  writeFileSync(file, readFileSync(join(FIXTURES, 'mosquitto.passwd'), 'utf8') + readFileSync(join(FIXTURES, 'mqlite.passwd'), 'utf8'))
  return file
}

type Version = 4 | 5

const connack = (p: Packet) => p.cmd === 'connack'
const code = (p: Packet): number | undefined => (p as { reasonCode?: number; returnCode?: number }).reasonCode ?? (p as { returnCode?: number }).returnCode

describe.each([4, 5] as const)('password file and ACL, MQTT version %i', (version: Version) => {
  let running: RunningBroker
  let file: string
  const raws: RawClient[] = []
  const pool = createClientPool()

  async function login(clientId: string, username?: string, password?: string): Promise<RawClient> {
    const client = await rawConnect(running.port, version)
    raws.push(client)
    client.send(connectPacket(clientId, { protocolVersion: version, ...(username !== undefined && { username }), ...(password !== undefined && { password: Buffer.from(password) }) }))
    return client
  }
  async function loggedIn(clientId: string, username?: string, password?: string): Promise<RawClient> {
    const client = await login(clientId, username, password)
    expect(code(await client.next(connack))).toBe(0)
    return client
  }

  beforeAll(async () => {
    file = passwordFile()
    running = await startBroker({ auth: { passwordFile: file, aclFile: join(FIXTURES, 'acl'), failureDelay: FAILURE_DELAY } })
  })
  afterEach(async () => {
    for (const r of raws.splice(0)) r.close()
    await pool.closeAll()
  })
  afterAll(() => running?.close())

  it.each([
    ['alice', 'alice-pw', 'Mosquitto $7$'],
    ['carol', 'carol-pw', 'Mosquitto $6$'],
    ['dave', 'dave-pw', 'mqlite scrypt'],
  ])('accepts %s with the right password (%s hash)', async (user, password) => {
    await loggedIn(`ok-${user}-${version}`, user, password)
  })

  it('refuses a wrong password or an unknown user after the failure delay, and counts it', async () => {
    const stats = running.broker.security.auth
    const before = stats.authFailures.bad_credentials
    for (const [user, password] of [['alice', 'wrong'], ['nobody', 'alice-pw'], ['alice', undefined]] as const) {
      const started = Date.now()
      const client = await login(`bad-${version}`, user, password)
      const answer = await client.next(connack)
      expect(Date.now() - started).toBeGreaterThanOrEqual(FAILURE_DELAY - 5)
      // 3.1.1: 4 = bad user name or password; 5: 0x86
      expect(code(answer)).toBe(version === 5 ? 0x86 : 4)
      await client.closed
    }
    expect(stats.authFailures.bad_credentials - before).toBe(3)
  })

  it('acknowledges and drops a denied QoS 1 publish (0x87 for MQTT 5) and keeps the connection', async () => {
    const alice = await loggedIn(`alice-pub-${version}`, 'alice', 'alice-pw')
    alice.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'alice/#', qos: 1 }] })
    expect(await alice.next((p) => p.cmd === 'suback')).toMatchObject({ granted: [1] })
    const denied = running.broker.security.auth.denied.publish
    alice.send({ cmd: 'publish', topic: 'alice/secret/x', payload: Buffer.from('s'), qos: 1, messageId: 2, retain: false, dup: false })
    const ack = await alice.next((p) => p.cmd === 'puback' && p.messageId === 2)
    expect(code(ack) ?? 0).toBe(version === 5 ? 0x87 : 0)
    alice.send({ cmd: 'publish', topic: 'alice/secret/y', payload: Buffer.from('s'), qos: 0, retain: false, dup: false })
    alice.send({ cmd: 'publish', topic: 'alice/notes', payload: Buffer.from('n'), qos: 1, messageId: 3, retain: false, dup: false })
    expect(await alice.next((p) => p.cmd === 'publish')).toMatchObject({ topic: 'alice/notes' })
    await sleep(100)
    const topics = alice.received.filter((p) => p.cmd === 'publish').map((p) => (p as { topic: string }).topic)
    expect(topics).toEqual(['alice/notes'])
    // QoS 2: 3.1.1 gets PUBREC and completes the flow with PUBREL/PUBCOMP; MQTT 5 gets PUBREC 0x87
    alice.send({ cmd: 'publish', topic: 'alice/secret/z', payload: Buffer.from('s'), qos: 2, messageId: 4, retain: false, dup: false })
    expect(code(await alice.next((p) => p.cmd === 'pubrec' && p.messageId === 4)) ?? 0).toBe(version === 5 ? 0x87 : 0)
    if (version === 4) {
      alice.send({ cmd: 'pubrel', messageId: 4 })
      await alice.next((p) => p.cmd === 'pubcomp' && p.messageId === 4)
    }
    await sleep(100)
    expect(alice.received.filter((p) => p.cmd === 'publish')).toHaveLength(1)
    expect(running.broker.security.auth.denied.publish - denied).toBe(3)
    expect(alice.socket.destroyed).toBe(false)
  })

  it('refuses subscriptions the ACL does not cover (0x80 / 0x87), including $SYS and shared ones', async () => {
    const carol = await loggedIn(`carol-sub-${version}`, 'carol', 'carol-pw')
    const shared = version === 5 ? ['$share/g/public/#', '$share/g/alice/#'] : []
    carol.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: ['public/#', 'alice/#', '#', '$SYS/#', ...shared].map((topic) => ({ topic, qos: 0 as const })),
    })
    const refused = version === 5 ? 0x87 : 0x80
    const expected = [0, refused, refused, refused, ...(version === 5 ? [0, refused] : [])]
    expect(await carol.next((p) => p.cmd === 'suback')).toMatchObject({ granted: expected })
    const alice = await loggedIn(`alice-sys-${version}`, 'alice', 'alice-pw')
    alice.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$SYS/#', qos: 0 }] })
    expect(await alice.next((p) => p.cmd === 'suback')).toMatchObject({ granted: [0] })
  })

  it('withholds retained and live messages on denied topics from a wider subscription', async () => {
    const dave = await pool.connect(running.url, { protocolVersion: version, username: 'dave', password: 'dave-pw' })
    await dave.publishAsync('alice/secret/plan', 'classified', { qos: 1, retain: true })
    await dave.publishAsync('alice/notes', 'hello', { qos: 1, retain: true })
    const alice = await pool.connect(running.url, { protocolVersion: version, username: 'alice', password: 'alice-pw' })
    const inbox = collectMessages(alice)
    await alice.subscribeAsync('alice/#', { qos: 1 })
    await inbox.waitFor(1)
    await dave.publishAsync('alice/secret/live', 'classified', { qos: 1 })
    await dave.publishAsync('alice/live', 'hi', { qos: 1 })
    await inbox.waitFor(2)
    await sleep(100)
    expect(inbox.messages.map((m) => m.topic)).toEqual(['alice/notes', 'alice/live'])
    await dave.publishAsync('alice/secret/plan', '', { qos: 1, retain: true })
    await dave.publishAsync('alice/notes', '', { qos: 1, retain: true })
  })

  it('lets anonymous clients on a loopback listener use the anonymous rules and %c patterns only', async () => {
    const anon = await loggedIn(`dev-${version}`)
    anon.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'public/#', qos: 0 }, { topic: `devices/dev-${version}/#`, qos: 0 }, { topic: 'devices/#', qos: 0 }] })
    const refused = version === 5 ? 0x87 : 0x80
    expect(await anon.next((p) => p.cmd === 'suback')).toMatchObject({ granted: [0, 0, refused] })
    anon.send({ cmd: 'publish', topic: `devices/dev-${version}/state`, payload: Buffer.from('on'), qos: 0, retain: false, dup: false })
    expect(await anon.next((p) => p.cmd === 'publish')).toMatchObject({ topic: `devices/dev-${version}/state` })
    anon.send({ cmd: 'publish', topic: '$SYS/fake', payload: Buffer.from('x'), qos: 1, messageId: 5, retain: false, dup: false })
    expect(code(await anon.next((p) => p.cmd === 'puback')) ?? 0).toBe(version === 5 ? 0x87 : 0)
  })

  it('reloads the password file without dropping connections', async () => {
    const alice = await loggedIn(`alice-reload-${version}`, 'alice', 'alice-pw')
    const zoeLine = (await import('../../src/auth/password-hash.js')).hashPassword('zoe-pw', { N: 1024, r: 8, p: 1 })
    const original = readFileSync(file, 'utf8')
    writeFileSync(file, `${original}zoe:${await zoeLine}\n`)
    try {
      running.broker.reload()
      await loggedIn(`zoe-${version}`, 'zoe', 'zoe-pw')
      // a broken file is refused as a whole; the previous table stays in force
      writeFileSync(file, `${original}broken line\n`)
      expect(() => running.broker.reload()).toThrow(/line/)
      await loggedIn(`zoe2-${version}`, 'zoe', 'zoe-pw')
    } finally {
      writeFileSync(file, original)
      running.broker.reload()
    }
    alice.send({ cmd: 'pingreq' })
    await alice.next((p) => p.cmd === 'pingresp')
  })
})

describe('anonymous clients on a listener bound to a non-loopback address', () => {
  let running: RunningBroker
  const raws: RawClient[] = []
  beforeAll(async () => {
    running = await startBroker({
      listeners: [
        { type: 'tcp', host: '0.0.0.0', port: 0 },
        { type: 'tcp', host: '0.0.0.0', port: 0, allowAnonymous: true },
      ],
      auth: { passwordFile: passwordFile(), failureDelay: 10 },
    })
  })
  afterEach(() => {
    for (const r of raws.splice(0)) r.close()
  })
  afterAll(() => running?.close())
  const portOf = (i: number) => running.broker.listeners[i]!.address.port

  it.each([4, 5] as const)('are refused by default (not authorized), users with passwords are not (v%i)', async (version) => {
    const anon = await rawConnect(portOf(0), version)
    raws.push(anon)
    anon.send(connectPacket('anon', { protocolVersion: version }))
    expect(code(await anon.next(connack))).toBe(version === 5 ? 0x87 : 5)
    await anon.closed
    expect(running.broker.security.auth.authFailures.anonymous_refused).toBeGreaterThan(0)
    const user = await rawConnect(portOf(0), version)
    raws.push(user)
    user.send(connectPacket('user', { protocolVersion: version, username: 'dave', password: Buffer.from('dave-pw') }))
    expect(code(await user.next(connack))).toBe(0)
  })

  it('are accepted where the listener allows them explicitly', async () => {
    const anon = await rawConnect(portOf(1))
    raws.push(anon)
    anon.send(connectPacket('anon-ok'))
    expect(code(await anon.next(connack))).toBe(0)
  })
})
