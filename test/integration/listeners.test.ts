import { readFileSync } from 'node:fs'
import { WebSocket } from 'ws'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { makeCertificates, type TestCertificates } from '../helpers/certs.js'
import { collectMessages, createClientPool } from '../helpers/mqtt-clients.js'

// Every transport on its own port in one broker; a message crosses all of them.
describe('listeners', () => {
  let certs: TestCertificates
  let running: RunningBroker
  const pool = createClientPool()
  const urlOf = (type: string) => {
    const listener = running.broker.listeners.find((l) => l.type === type)
    if (!listener) throw new Error(`no ${type} listener`)
    return listener.url
  }

  beforeAll(async () => {
    certs = makeCertificates()
    const tls = { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca }
    running = await startBroker({
      listeners: [
        { type: 'tcp', host: '127.0.0.1', port: 0 },
        { type: 'tls', host: '127.0.0.1', port: 0, tls },
        { type: 'tls', host: '127.0.0.1', port: 0, name: 'tls-mutual', tls: { ...tls, requestCert: true } },
        { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
        { type: 'wss', host: '127.0.0.1', port: 0, path: '/secure', tls },
      ],
    })
  })
  afterEach(() => pool.closeAll())
  afterAll(() => running?.close())

  it('binds each listener to its own port and reports its URL', () => {
    const urls = running.broker.listeners.map((l) => l.url)
    expect(new Set(running.broker.listeners.map((l) => l.address.port)).size).toBe(5)
    expect(urls[3]).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/)
    expect(urls[4]).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/secure$/)
  })

  it.each([4, 5] as const)('delivers across tcp, tls, ws and wss (MQTT %i)', async (protocolVersion) => {
    const ca = readFileSync(certs.ca)
    const sub = await pool.connect(urlOf('ws'), { protocolVersion })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync(`x/${protocolVersion}`, { qos: 1 })
    const viaTcp = await pool.connect(urlOf('tcp'), { protocolVersion })
    const viaTls = await pool.connect(urlOf('tls'), { protocolVersion, ca, servername: 'localhost' })
    const viaWss = await pool.connect(urlOf('wss'), { protocolVersion, ca, wsOptions: { ca } } as never)
    await viaTcp.publishAsync(`x/${protocolVersion}`, 'tcp', { qos: 1 })
    await viaTls.publishAsync(`x/${protocolVersion}`, 'tls', { qos: 1 })
    await viaWss.publishAsync(`x/${protocolVersion}`, 'wss', { qos: 1 })
    const got = await inbox.waitFor(3)
    expect(got.map((m) => m.payload.toString()).sort()).toEqual(['tcp', 'tls', 'wss'])
  })

  it('answers the WebSocket upgrade with the mqtt subprotocol [MQTT-6.0.0-3]', async () => {
    const ws = new WebSocket(urlOf('ws'), ['mqtt'])
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    expect(ws.protocol).toBe('mqtt')
    ws.terminate()
  })

  it('accepts a client certificate signed by the CA and refuses a client without one', async () => {
    const mutual = running.broker.listeners.find((l) => l.name === 'tls-mutual')!
    const ca = readFileSync(certs.ca)
    const ok = await pool.connect(mutual.url, {
      ca,
      cert: readFileSync(certs.clientCert),
      key: readFileSync(certs.clientKey),
      servername: 'localhost',
    })
    expect(ok.connected).toBe(true)
    const refused = pool.raw(mutual.url, { ca, servername: 'localhost' })
    await new Promise<void>((resolve) => {
      refused.once('error', () => resolve())
      refused.once('close', () => resolve())
    })
    expect(refused.connected).toBe(false)
  })

  it('refuses a plain HTTP request on a WebSocket port with 426', async () => {
    const res = await fetch(urlOf('ws').replace('ws://', 'http://'))
    expect(res.status).toBe(426)
  })
})
