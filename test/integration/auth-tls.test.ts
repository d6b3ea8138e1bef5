import { copyFileSync, readFileSync } from 'node:fs'
import { connect as tlsConnect } from 'node:tls'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { makeCertificates, type TestCertificates } from '../helpers/certs.js'
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { collectMessages, createClientPool, sleep } from '../helpers/mqtt-clients.js'
import { tempDir } from '../helpers/stores.js'

// Client certificates as identity (CN → user name → ACL) on TLS and WSS listeners, and SIGHUP
// reloading files and certificates in a real `mqlite` process.

const FIXTURES = fileURLToPath(new URL('../fixtures/security/', import.meta.url))

describe('client certificate identity', () => {
  let certs: TestCertificates
  let running: RunningBroker
  const pool = createClientPool()
  beforeAll(async () => {
    certs = makeCertificates()
    const tls = { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requestCert: true, rejectUnauthorized: false }
    running = await startBroker({
      listeners: [
        { type: 'tls', host: '127.0.0.1', port: 0, tls, allowAnonymous: false },
        { type: 'wss', host: '127.0.0.1', port: 0, tls, allowAnonymous: false },
      ],
      auth: { aclFile: join(FIXTURES, 'acl'), certificateIdentity: 'cn', failureDelay: 10 },
    })
  })
  afterEach(() => pool.closeAll())
  afterAll(() => running?.close())

  const urls = () => running.broker.listeners.map((l) => l.url)
  const clientTls = () => ({ ca: readFileSync(certs.ca), cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey), rejectUnauthorized: true })

  it.each([0, 1])('takes the user name from the certificate CN and applies its ACL (listener %i)', async (index) => {
    const url = urls()[index]!
    const device = await pool.connect(url, { ...clientTls(), protocolVersion: 5, clientId: `cert-${index}` })
    const inbox = collectMessages(device)
    expect((await device.subscribeAsync('fleet/#', { qos: 1 })).map((g) => g.qos)).toEqual([1])
    await expect(device.subscribeAsync('alice/#', { qos: 1 })).rejects.toThrow(/Not authorized/)
    await device.publishAsync('fleet/status', 'up', { qos: 1 })
    await inbox.waitFor(1)
    await expect(device.publishAsync('alice/notes', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
  })

  it('refuses a client without a certificate and without credentials on a listener closed to anonymous clients', async () => {
    const client = pool.raw(urls()[0]!, { ca: readFileSync(certs.ca), protocolVersion: 4 })
    const error = await new Promise<Error & { code?: number }>((resolve) => client.once('error', resolve))
    expect(error.code).toBe(5)
  })
})

describe('SIGHUP in a running mqlite', () => {
  let certs: TestCertificates
  let child: ChildBroker | undefined
  const pool = createClientPool()
  afterAll(async () => {
    await pool.closeAll()
    await child?.stop()
  })

  it('reloads the password file and TLS certificates and keeps every connection', async () => {
    certs = makeCertificates()
    const dir = tempDir('mqlite-sighup-')
    const passwd = join(dir, 'passwd')
    copyFileSync(join(FIXTURES, 'mqlite.passwd'), passwd)
    const cert = join(dir, 'server.pem')
    const key = join(dir, 'server.key')
    copyFileSync(certs.serverCert, cert)
    copyFileSync(certs.serverKey, key)
    const listeners = JSON.stringify([
      { type: 'tcp', host: '127.0.0.1', port: 0 },
      { type: 'tls', host: '127.0.0.1', port: 0, tls: { cert, key } },
    ])
    child = await spawnBroker(['--store', 'memory', '--no-metrics', '--set', `listeners=${listeners}`, '--set', `auth.passwordFile=${passwd}`, '--set', 'auth.failureDelay=10'], { listeners: 2 })
    expect(child.logs.filter((l) => typeof l.msg === 'string' && /^listener .*: anonymous clients allowed, passwords from/.test(l.msg))).toHaveLength(2)
    const [tcpPort, tlsPort] = child.ports as [number, number]
    const dave = await pool.connect(`mqtt://127.0.0.1:${tcpPort}`, { username: 'dave', password: 'dave-pw' })
    const refused = pool.raw(`mqtt://127.0.0.1:${tcpPort}`, { username: 'erin', password: 'erin-pw' })
    expect((await new Promise<Error & { code?: number }>((r) => refused.once('error', r))).code).toBe(4)

    const firstCert = await peerCertificate(tlsPort)
    // new user, new server certificate (a fresh CA), then SIGHUP
    const { hashPassword } = await import('../../src/auth/password-hash.js')
    const { appendFileSync } = await import('node:fs')
    appendFileSync(passwd, `erin:${await hashPassword('erin-pw', { N: 1024, r: 8, p: 1 })}\n`)
    const next = makeCertificates()
    copyFileSync(next.serverCert, cert)
    copyFileSync(next.serverKey, key)
    child.process.kill('SIGHUP')
    const deadline = Date.now() + 5000
    while (!child.logs.some((l) => l.msg === 'reloaded password file, ACL and certificates') && Date.now() < deadline) await sleep(50)
    expect(child.logs.some((l) => l.msg === 'reloaded password file, ACL and certificates')).toBe(true)

    await pool.connect(`mqtt://127.0.0.1:${tcpPort}`, { username: 'erin', password: 'erin-pw' })
    expect(await peerCertificate(tlsPort)).not.toBe(firstCert)
    expect(dave.connected).toBe(true)
    await dave.publishAsync('still/here', 'yes', { qos: 1 })
  })
})

/** The fingerprint of the certificate a TLS listener presents now. */
function peerCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256
      socket.destroy()
      resolve(fingerprint)
    })
    socket.once('error', reject)
  })
}

