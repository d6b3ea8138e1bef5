import { readFileSync } from 'node:fs'
import type { MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { allowAllAuthorizer, type Authorizer } from '../../src/auth/authorizer.js'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { collectMessages, createClientPool, sleep } from '../helpers/mqtt-clients.js'

const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

// Clients named "device-..." may not read $SYS (an ACL decision, like any other topic).
const authorizer: Authorizer = {
  ...allowAllAuthorizer,
  canSubscribe: (client, filter) => !(client.id.startsWith('device-') && filter.startsWith('$SYS')),
}

/** Keeps the latest value of every $SYS topic a client sees. */
function watchSys(client: MqttClient) {
  const latest = new Map<string, string>()
  const retainedOnSubscribe = new Set<string>()
  client.on('message', (topic, payload, packet) => {
    latest.set(topic, payload.toString())
    if (packet.retain) retainedOnSubscribe.add(topic)
  })
  return {
    latest,
    retainedOnSubscribe,
    /** Resolves once `topic` has a value passing `check` (values arrive each interval). */
    async until(topic: string, check: (value: string) => boolean, timeoutMs = 5000): Promise<string> {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const value = latest.get(topic)
        if (value !== undefined && check(value)) return value
        if (Date.now() > deadline) throw new Error(`${topic}: last value ${value}`)
        await sleep(20)
      }
    },
  }
}

describe('$SYS topics', () => {
  let running: RunningBroker
  const pool = createClientPool()
  beforeAll(async () => {
    // metrics off: $SYS alone still counts messages
    running = await startBroker({ metrics: { enabled: false }, sys: { interval: 1 } }, { authorizer })
  })
  afterEach(() => pool.closeAll())
  afterAll(() => running?.close())

  it('publishes the Mosquitto-style status topics, retained, with live values', async () => {
    // Let the first rounds pass, so the values below are retained ones.
    await sleep(1100)
    const watcher = await pool.connect(running.url, { clientId: 'ops-console' })
    const sys = watchSys(watcher)
    await watcher.subscribeAsync('$SYS/broker/#', { qos: 0 })
    expect(await sys.until('$SYS/broker/version', () => true)).toBe(`mqlite ${PACKAGE_VERSION}`)
    expect(sys.retainedOnSubscribe.has('$SYS/broker/version')).toBe(true)
    expect(Number(await sys.until('$SYS/broker/uptime', (v) => /^\d+ seconds$/.test(v)).then((v) => v.split(' ')[0]))).toBeGreaterThanOrEqual(1)

    const sub = await pool.connect(running.url)
    const inbox = collectMessages(sub)
    await sub.subscribeAsync(['sys/a', 'sys/b'], { qos: 1 })
    const pub = await pool.connect(running.url)
    for (let i = 0; i < 5; i++) await pub.publishAsync('sys/a', `m${i}`, { qos: 1 })
    await pub.publishAsync('sys/retained', 'r', { qos: 1, retain: true })
    await inbox.waitFor(5)

    await sys.until('$SYS/broker/clients/connected', (v) => v === '3')
    await sys.until('$SYS/broker/clients/total', (v) => v === '3')
    await sys.until('$SYS/broker/messages/received', (v) => v === '6')
    await sys.until('$SYS/broker/publish/messages/received', (v) => v === '6')
    // the retained publish matched nobody but is kept: not a drop
    await sys.until('$SYS/broker/publish/messages/dropped', (v) => v === '0')
    // the watcher's $SYS/broker/# and the subscriber's two topics
    await sys.until('$SYS/broker/subscriptions/count', (v) => v === '3')
    const sent = Number(await sys.until('$SYS/broker/messages/sent', (v) => Number(v) >= 5))
    expect(sent).toBeGreaterThanOrEqual(5)
    expect(Number(await sys.until('$SYS/broker/load/messages/received/1min', (v) => Number(v) > 0))).toBeGreaterThan(0)
    expect(Number(await sys.until('$SYS/broker/bytes/received', (v) => Number(v) > 0))).toBeGreaterThan(0)
    // retained: sys/retained plus the broker's own retained $SYS topics
    expect(Number(await sys.until('$SYS/broker/retained messages/count', (v) => Number(v) > 1))).toBeGreaterThan(1)
  })

  it('counts offline persistent sessions in clients/disconnected and clients/total', async () => {
    const watcher = await pool.connect(running.url, { clientId: 'ops-console-2' })
    const sys = watchSys(watcher)
    await watcher.subscribeAsync('$SYS/broker/clients/+', { qos: 0 })
    const persistent = await pool.connect(running.url, { clientId: 'sleepy', clean: false })
    await persistent.subscribeAsync('sleepy/in', { qos: 1 })
    await persistent.endAsync()
    await sys.until('$SYS/broker/clients/disconnected', (v) => v === '1')
    await sys.until('$SYS/broker/clients/total', (v) => v === '2')
    await sys.until('$SYS/broker/clients/connected', (v) => v === '1')
  })

  it('is not readable by clients the ACL refuses, and not matched by a plain # subscription', async () => {
    const device = await pool.connect(running.url, { clientId: 'device-7' })
    const inbox = collectMessages(device)
    // SUBACK 0x80: mqtt.js turns the refusal into an error
    await expect(device.subscribeAsync('$SYS/#', { qos: 0 })).rejects.toThrow(/Subscribe error/)
    const everything = await pool.connect(running.url, { clientId: 'wildcard-fan' })
    const fanInbox = collectMessages(everything)
    await everything.subscribeAsync('#', { qos: 0 })
    await sleep(1200)
    expect(inbox.messages).toHaveLength(0)
    expect(fanInbox.messages.filter((m) => m.topic.startsWith('$SYS'))).toHaveLength(0)
  })

  it('refuses $SYS publishes from clients', async () => {
    const watcher = await pool.connect(running.url, { clientId: 'ops-console-3' })
    const sys = watchSys(watcher)
    await watcher.subscribeAsync('$SYS/broker/version', { qos: 0 })
    await sys.until('$SYS/broker/version', () => true)
    const forger = await pool.connect(running.url, { protocolVersion: 5 })
    await forger.publishAsync('$SYS/broker/version', 'evil 6.6.6', { qos: 1 }).catch(() => undefined)
    await sleep(300)
    expect(sys.latest.get('$SYS/broker/version')).toBe(`mqlite ${PACKAGE_VERSION}`)
  })
})

describe('$SYS interval 0', () => {
  it('publishes nothing under $SYS/broker', async () => {
    const running = await startBroker({ sys: { interval: 0 } })
    const pool = createClientPool()
    try {
      const watcher = await pool.connect(running.url)
      const inbox = collectMessages(watcher)
      await watcher.subscribeAsync('$SYS/broker/#', { qos: 0 })
      await sleep(300)
      expect(inbox.messages).toHaveLength(0)
    } finally {
      await pool.closeAll()
      await running.close()
    }
  })
})
