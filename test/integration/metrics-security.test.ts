import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { createClientPool } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect } from '../helpers/raw-client.js'
import { sampleValue, scrape } from '../helpers/prometheus-text.js'

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/security/${name}`, import.meta.url))

// Refused logins, ACL denials and limit hits reach /metrics.
describe('security counters on /metrics', () => {
  let running: RunningBroker
  let base: string
  const pool = createClientPool()
  beforeAll(async () => {
    running = await startBroker({
      metrics: { enabled: true, host: '127.0.0.1', port: 0 },
      sys: { interval: 0 },
      auth: { passwordFile: fixture('mosquitto.passwd'), aclFile: fixture('acl'), failureDelay: 0 },
      limits: { maxClientIdLength: 16 },
    })
    base = running.broker.metrics.server!.url
  })
  afterEach(() => pool.closeAll())
  afterAll(() => running?.close())

  it('counts a bad password, an over-long client id and an ACL denial', async () => {
    const before = await scrape(base)
    const bad = pool.raw(running.url, { username: 'alice', password: 'wrong', protocolVersion: 5 })
    await new Promise((resolve) => bad.once('error', resolve))

    const long = await rawConnect(running.port, 4)
    long.send(connectPacket('a-client-id-longer-than-sixteen', { username: 'alice', password: Buffer.from('alice-pw') }))
    expect(await long.next((p) => p.cmd === 'connack')).toMatchObject({ returnCode: 2 })
    long.close()

    const alice = await pool.connect(running.url, { username: 'alice', password: 'alice-pw', protocolVersion: 5 })
    await alice.subscribeAsync('not/in/the/acl', { qos: 0 }).catch(() => {})

    const after = await scrape(base)
    const delta = (name: string, labels: Record<string, string>) => sampleValue(after, name, labels) - sampleValue(before, name, labels)
    expect(delta('mqlite_auth_failures_total', { reason: 'bad_credentials' })).toBe(1)
    expect(delta('mqlite_limit_hits_total', { limit: 'client_id_length' })).toBe(1)
    expect(delta('mqlite_authorization_denied_total', { action: 'subscribe' })).toBe(1)
    expect(after.get('mqlite_limit_hits_total')?.type).toBe('counter')
  })
})
