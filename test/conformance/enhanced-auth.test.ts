import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Packet } from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { deriveScramCredential, formatScramCredential } from '../../src/auth/enhanced/scram-credential.js'
import { hashPassword } from '../../src/auth/password-hash.js'
import { useBroker } from '../helpers/in-process-broker.js'
import { collectMessages } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'
import { scramClient } from '../helpers/scram-client.js'
import { storeConfigs, tempDir } from '../helpers/stores.js'

// Enhanced authentication (§4.12) and the AUTH packet (§3.15) with SCRAM-SHA-256, on the wire.
// alice and bob have SCRAM entries in the password file, carol an scrypt hash (plain logins only).

const METHOD = 'SCRAM-SHA-256'
const FAILURE_DELAY = 100

const lines = [
  `alice:${formatScramCredential(await deriveScramCredential('wonderland'))}`,
  `bob:${formatScramCredential(await deriveScramCredential('builder'))}`,
  `carol:${await hashPassword('carol-pw', { N: 1024, r: 8, p: 1 })}`,
  `dora:${formatScramCredential(await deriveScramCredential('first'))}`,
]
const doraChanged = `dora:${formatScramCredential(await deriveScramCredential('second'))}`

function authFiles(): { passwordFile: string; aclFile: string } {
  // each broker gets its own files: the reload test rewrites one
  const dir = tempDir('mqlite-scram-')
  const passwordFile = join(dir, 'passwd')
  const aclFile = join(dir, 'acl')
  writeFileSync(passwordFile, `${lines.join('\n')}\n`)
  writeFileSync(aclFile, 'pattern readwrite %u/#\n')
  return { passwordFile, aclFile }
}

type AnyPacket = Packet & { reasonCode?: number; returnCode?: number; properties?: { authenticationMethod?: string; authenticationData?: Buffer; reasonString?: string } }
const is = (cmd: string) => (p: Packet) => p.cmd === cmd
/** A predicate matching only packets received from now on (re-authentication repeats AUTH). */
const after = (client: RawClient, predicate: (p: Packet) => boolean) => {
  const from = client.received.length
  return (p: Packet) => client.received.indexOf(p) >= from && predicate(p)
}
const auth = (reasonCode: number, data?: string, method = METHOD): Packet =>
  ({ cmd: 'auth', reasonCode, properties: { authenticationMethod: method, ...(data !== undefined ? { authenticationData: Buffer.from(data) } : {}) } }) as Packet

describe.each(storeConfigs())('enhanced authentication, SCRAM-SHA-256 ($name store)', ({ store }) => {
  const { running, pool } = useBroker(() => ({
    store: store(),
    auth: { ...authFiles(), failureDelay: FAILURE_DELAY, allowAnonymous: false },
    mqtt: { connectTimeout: 2000 },
  }))
  const raws: RawClient[] = []
  afterEach(() => {
    for (const r of raws.splice(0)) r.close()
  })

  async function open(version: 4 | 5 = 5): Promise<RawClient> {
    const client = await rawConnect(running.port, version)
    raws.push(client)
    return client
  }

  /** CONNECT with client-first; resolves with the server's AUTH (or whatever came first). */
  async function begin(clientId: string, user: string, password: string, extra: Record<string, unknown> = {}) {
    const client = await open()
    const scram = scramClient(user, password)
    client.send(connectPacket(clientId, { protocolVersion: 5, properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(scram.first) }, ...extra }))
    const challenge = (await client.next((p) => p.cmd === 'auth' || p.cmd === 'connack')) as AnyPacket
    return { client, scram, challenge }
  }

  /** A full SCRAM login; resolves with the CONNACK. */
  async function login(clientId: string, user: string, password: string, extra: Record<string, unknown> = {}) {
    const { client, scram, challenge } = await begin(clientId, user, password, extra)
    expect(challenge.cmd).toBe('auth')
    client.send(auth(0x18, await scram.final(challenge.properties!.authenticationData!.toString())))
    const connack = (await client.next(is('connack'), 5000)) as AnyPacket
    return { client, scram, connack }
  }

  it('[MQTT-4.12.0-2] [MQTT-4.12.0-5] logs in with SCRAM: AUTH 0x18 with the method, CONNACK 0x00 with the method and server-final', async () => {
    const { client, scram, challenge } = await begin('scram-ok', 'alice', 'wonderland')
    expect(challenge).toMatchObject({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: METHOD } })
    expect(challenge.properties?.authenticationData?.toString()).toMatch(/^r=[^,]+,s=[A-Za-z0-9+/=]+,i=4096$/)
    client.send(auth(0x18, await scram.final(challenge.properties!.authenticationData!.toString())))
    const connack = (await client.next(is('connack'))) as AnyPacket
    expect(connack.reasonCode).toBe(0)
    expect(connack.properties?.authenticationMethod).toBe(METHOD)
    // the server proves it holds the keys too
    expect(scram.verifyServer(connack.properties!.authenticationData!.toString())).toBe(true)
    client.send({ cmd: 'pingreq' })
    await client.next(is('pingresp'))
  })

  it('[MQTT-4.12.0-4] refuses a wrong password with CONNACK 0x87 after the failure delay, counted, and closes', async () => {
    const failures = running.broker.security.auth.authFailures
    const before = failures.enhanced_auth_failed
    const started = Date.now()
    const { client, connack } = await login('scram-bad', 'alice', 'not-wonderland')
    expect(connack.reasonCode).toBe(0x87)
    expect(Date.now() - started).toBeGreaterThanOrEqual(FAILURE_DELAY - 5)
    expect(connack.properties?.authenticationMethod).toBeUndefined()
    await client.closed
    expect(failures.enhanced_auth_failed - before).toBe(1)
  })

  it('[MQTT-4.12.0-4] refuses an unknown user the same way (0x87, same number of steps)', async () => {
    const { connack } = await login('scram-ghost', 'ghost', 'boo')
    expect(connack.reasonCode).toBe(0x87)
  })

  it('[MQTT-4.12.0-4] refuses a user whose entry is not SCRAM (only plain logins possible)', async () => {
    const { connack } = await login('scram-carol', 'carol', 'carol-pw')
    expect(connack.reasonCode).toBe(0x87)
  })

  it('refuses channel binding ("p=") with CONNACK 0x87 without a challenge', async () => {
    const client = await open()
    client.send(connectPacket('scram-cb', { protocolVersion: 5, properties: { authenticationMethod: METHOD, authenticationData: Buffer.from('p=tls-unique,,n=alice,r=abc') } }))
    expect(await client.next(is('connack'))).toMatchObject({ reasonCode: 0x87 })
    expect(client.received.filter(is('auth'))).toEqual([])
  })

  it('refuses a CONNECT User Name that differs from the SCRAM user with 0x87', async () => {
    const { connack } = await login('scram-other-name', 'alice', 'wonderland', { username: 'bob' })
    expect(connack.reasonCode).toBe(0x87)
  })

  it('[MQTT-4.12.0-1] refuses an unknown Authentication Method with CONNACK 0x8C and closes', async () => {
    const client = await open()
    client.send(connectPacket('unknown-method', { protocolVersion: 5, properties: { authenticationMethod: 'GS2-KRB5' } }))
    expect(await client.next(is('connack'))).toMatchObject({ reasonCode: 0x8c })
    await client.closed
  })

  it('[MQTT-4.12.0-6] sends no AUTH and no Authentication Method to a client that named none', async () => {
    const client = await open()
    client.send(connectPacket('plain-v5', { protocolVersion: 5, username: 'alice', password: Buffer.from('wonderland') }))
    const connack = (await client.next(is('connack'))) as AnyPacket
    expect(connack.reasonCode).toBe(0)
    expect(connack.properties?.authenticationMethod).toBeUndefined()
    expect(client.received.filter(is('auth'))).toEqual([])
  })

  it('[MQTT-4.12.0-7] answers AUTH from a client that named no method with DISCONNECT 0x82', async () => {
    const client = await open()
    client.send(connectPacket('plain-then-auth', { protocolVersion: 5, username: 'alice', password: Buffer.from('wonderland') }))
    expect(await client.next(is('connack'))).toMatchObject({ reasonCode: 0 })
    client.send(auth(0x19, 'n,,n=alice,r=abc'))
    expect(await client.next(is('disconnect'))).toMatchObject({ reasonCode: 0x82 })
    await client.closed
  })

  it('[MQTT-3.1.2-30] a packet other than AUTH or DISCONNECT during the exchange is a protocol error (CONNACK 0x82)', async () => {
    const { client, challenge } = await begin('publish-too-early', 'alice', 'wonderland')
    expect(challenge.cmd).toBe('auth')
    client.send({ cmd: 'publish', topic: 'alice/early', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    expect(await client.next(is('connack'))).toMatchObject({ reasonCode: 0x82 })
    await client.closed
  })

  it('[MQTT-3.1.0-2] a second CONNECT during the exchange is a protocol error, not a way around it', async () => {
    const { client, challenge } = await begin('second-connect', 'alice', 'wonderland')
    expect(challenge.cmd).toBe('auth')
    client.send(connectPacket('second-connect', { protocolVersion: 5, username: 'alice', password: Buffer.from('wonderland') }))
    expect(await client.next(is('connack'))).toMatchObject({ reasonCode: 0x82 })
    await client.closed
    expect(client.received.filter(is('connack'))).toHaveLength(1)
  })

  it('[MQTT-4.12.0-3] [MQTT-4.12.0-5] an AUTH answer with another reason code or method is a protocol error', async () => {
    for (const [reason, method] of [[0x19, METHOD], [0x18, 'SCRAM-SHA-1']] as const) {
      const { client, challenge } = await begin(`bad-answer-${reason}`, 'alice', 'wonderland')
      expect(challenge.cmd).toBe('auth')
      client.send(auth(reason, 'c=biws,r=x,p=AAAA', method))
      expect(await client.next(is('connack'))).toMatchObject({ reasonCode: 0x82 })
    }
  })

  it('closes an exchange that does not finish within mqtt.connectTimeout', async () => {
    const { client, challenge } = await begin('too-slow', 'alice', 'wonderland')
    expect(challenge.cmd).toBe('auth')
    await client.closed
    expect(client.received.filter(is('connack'))).toEqual([])
  }, 6000)

  it('[MQTT-4.12.1-1] re-authenticates with AUTH 0x19: AUTH 0x18 challenge, then AUTH 0x00 with server-final', async () => {
    const { client, connack } = await login('reauth-ok', 'alice', 'wonderland')
    expect(connack.reasonCode).toBe(0)
    const again = scramClient('alice', 'wonderland')
    const reauthChallenge = after(client, (p) => p.cmd === 'auth' && (p as AnyPacket).reasonCode === 0x18)
    client.send(auth(0x19, again.first))
    const challenge = (await client.next(reauthChallenge)) as AnyPacket
    expect(challenge.properties?.authenticationMethod).toBe(METHOD)
    // other packets flow on the previous authentication meanwhile (§4.12.1)
    client.send({ cmd: 'pingreq' })
    await client.next(is('pingresp'))
    client.send(auth(0x18, await again.final(challenge.properties!.authenticationData!.toString())))
    const done = (await client.next((p) => p.cmd === 'auth' && (p as AnyPacket).reasonCode === 0)) as AnyPacket
    expect(done.properties?.authenticationMethod).toBe(METHOD)
    expect(again.verifyServer(done.properties!.authenticationData!.toString())).toBe(true)
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'alice/t', qos: 0 }] })
    expect(await client.next(is('suback'))).toMatchObject({ granted: [0] })
  })

  it('[MQTT-4.12.1-2] a failed re-authentication ends with DISCONNECT 0x87 and a closed connection', async () => {
    const { client } = await login('reauth-bad', 'alice', 'wonderland')
    const wrong = scramClient('alice', 'guess')
    const reauthChallenge = after(client, is('auth'))
    client.send(auth(0x19, wrong.first))
    const challenge = (await client.next(reauthChallenge)) as AnyPacket
    client.send(auth(0x18, await wrong.final(challenge.properties!.authenticationData!.toString())))
    expect(await client.next(is('disconnect'), 5000)).toMatchObject({ reasonCode: 0x87 })
    await client.closed
  })

  it('refuses a re-authentication as another user (DISCONNECT 0x87)', async () => {
    const { client } = await login('reauth-other-user', 'alice', 'wonderland')
    const bob = scramClient('bob', 'builder')
    const reauthChallenge = after(client, is('auth'))
    client.send(auth(0x19, bob.first))
    const challenge = (await client.next(reauthChallenge)) as AnyPacket
    client.send(auth(0x18, await bob.final(challenge.properties!.authenticationData!.toString())))
    expect(await client.next(is('disconnect'), 5000)).toMatchObject({ reasonCode: 0x87 })
  })

  it('ends a re-authentication the client leaves unanswered (mqtt.connectTimeout) with DISCONNECT 0x87', async () => {
    const { client } = await login('reauth-silent', 'alice', 'wonderland')
    const challenge = after(client, is('auth'))
    client.send(auth(0x19, scramClient('alice', 'wonderland').first))
    await client.next(challenge)
    expect(await client.next(is('disconnect'), 4000)).toMatchObject({ reasonCode: 0x87 })
  }, 6000)

  it('uses the reloaded password file (SIGHUP) for the next exchange', async () => {
    expect((await login('reload-1', 'dora', 'first')).connack.reasonCode).toBe(0)
    const file = running.broker.config.auth.passwordFile!
    const text = readFileSync(file, 'utf8')
    writeFileSync(file, text.replace(/^dora:.*$/m, doraChanged))
    running.broker.reload()
    expect((await login('reload-2', 'dora', 'first')).connack.reasonCode).toBe(0x87)
    expect((await login('reload-3', 'dora', 'second')).connack.reasonCode).toBe(0)
  })

  it('[MQTT-4.12.1-1] a re-authentication with another method is a protocol error (DISCONNECT 0x82)', async () => {
    const { client } = await login('reauth-method', 'alice', 'wonderland')
    client.send(auth(0x19, 'x', 'SCRAM-SHA-1'))
    expect(await client.next(is('disconnect'))).toMatchObject({ reasonCode: 0x82 })
  })

  it('the ACL sees the SCRAM user name', async () => {
    const { client, connack } = await login('acl-scram', 'bob', 'builder')
    expect(connack.reasonCode).toBe(0)
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bob/#', qos: 1 }, { topic: 'alice/#', qos: 1 }] })
    expect(await client.next(is('suback'))).toMatchObject({ granted: [1, 0x87] })
    client.send({ cmd: 'publish', topic: 'alice/x', payload: Buffer.from('x'), qos: 1, messageId: 2, retain: false, dup: false })
    expect(await client.next(is('puback'))).toMatchObject({ reasonCode: 0x87 })
  })

  it('logs a 3.1.1 client in with the plain password of a SCRAM entry; a wrong one gets return code 4', async () => {
    const good = await open(4)
    good.send(connectPacket('v4-alice', { username: 'alice', password: Buffer.from('wonderland') }))
    expect(await good.next(is('connack'))).toMatchObject({ returnCode: 0 })
    const bad = await open(4)
    bad.send(connectPacket('v4-alice-bad', { username: 'alice', password: Buffer.from('nope') }))
    expect(await bad.next(is('connack'))).toMatchObject({ returnCode: 4 })
    // an AUTH packet (type 15) does not exist in 3.1.1: the connection is closed, nothing is sent
    good.sendBytes(Buffer.from([0xf0, 0x02, 0x18, 0x00]))
    await good.closed
    expect(good.received.map((p) => p.cmd)).toEqual(['connack'])
  })

  it('a 3.1.1 CONNECT is never held: no AUTH, CONNACK as before', async () => {
    const client = await open(4)
    client.send(connectPacket('v4-plain', { username: 'carol', password: Buffer.from('carol-pw') }))
    expect(await client.next(is('connack'))).toMatchObject({ returnCode: 0 })
    expect(client.received.filter(is('auth'))).toEqual([])
  })

  describe('with auth.enhancedMethods: []', () => {
    const off = useBroker(() => ({ store: store(), auth: { ...authFiles(), enhancedMethods: [], failureDelay: 0, allowAnonymous: false } }))

    it('[MQTT-4.12.0-1] refuses SCRAM-SHA-256 with CONNACK 0x8C; the plain password of a SCRAM entry still works', async () => {
      const scram = await rawConnect(off.running.port, 5)
      raws.push(scram)
      scram.send(connectPacket('scram-off', { protocolVersion: 5, properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(scramClient('alice', 'wonderland').first) } }))
      expect(await scram.next(is('connack'))).toMatchObject({ reasonCode: 0x8c })
      const plain = await rawConnect(off.running.port, 5)
      raws.push(plain)
      plain.send(connectPacket('plain-on', { protocolVersion: 5, username: 'alice', password: Buffer.from('wonderland') }))
      expect(await plain.next(is('connack'))).toMatchObject({ reasonCode: 0 })
    })
  })

  it('mqtt.js v5 logs in with SCRAM through handleAuth', async () => {
    const scram = scramClient('alice', 'wonderland')
    const client = pool.raw(running.url, {
      protocolVersion: 5,
      clientId: 'mqttjs-scram',
      properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(scram.first) },
    })
    client.handleAuth = (packet, callback) => {
      const data = packet.properties?.authenticationData?.toString() ?? ''
      scram.final(data).then(
        (final) => callback(undefined, { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: Buffer.from(final) } }),
        (err: Error) => callback(err),
      )
    }
    const connack = await new Promise<{ properties?: { authenticationData?: Buffer } }>((resolve, reject) => {
      client.once('connect', resolve)
      client.once('error', reject)
    })
    expect(scram.verifyServer(connack.properties?.authenticationData?.toString() ?? '')).toBe(true)
    const inbox = collectMessages(client)
    await client.subscribeAsync('alice/js', { qos: 1 })
    await client.publishAsync('alice/js', 'hi', { qos: 1 })
    expect((await inbox.waitFor(1))[0]?.payload.toString()).toBe('hi')
  })
})
