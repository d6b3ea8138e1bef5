import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { IClientOptions } from 'mqtt'
import type { Authorizer } from '../../src/auth/authorizer.js'
import { rawConnect, connectPacket } from '../helpers/raw-client.js'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { collectMessages, createClientPool, sleep } from '../helpers/mqtt-clients.js'
import { parseExposition, sampleValue, scrape, type Exposition } from '../helpers/prometheus-text.js'
import { storeConfigs } from '../helpers/stores.js'

const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
const HAS_PROMTOOL = spawnSync('promtool', ['--version']).status === 0
// .ci/run installs it (Debian package `prometheus`); say why the check is skipped where it is missing.
if (!HAS_PROMTOOL) console.warn('metrics.test.ts: `promtool` is not installed: skipping `promtool check metrics`')

/** Every mqlite_ family the broker documents, with its type (docs/metrics.md is checked against the code in test/unit). */
const FAMILIES: Record<string, string> = {
  mqlite_build_info: 'gauge',
  mqlite_uptime_seconds: 'gauge',
  mqlite_messages_received_total: 'counter',
  mqlite_messages_sent_total: 'counter',
  mqlite_messages_dropped_total: 'counter',
  mqlite_bytes_received_total: 'counter',
  mqlite_bytes_sent_total: 'counter',
  mqlite_connections: 'gauge',
  mqlite_connection_attempts_total: 'counter',
  mqlite_clients_connected: 'gauge',
  mqlite_sessions: 'gauge',
  mqlite_subscriptions: 'gauge',
  mqlite_retained_messages: 'gauge',
  mqlite_queued_messages: 'gauge',
  mqlite_inflight_messages: 'gauge',
  mqlite_store_held_messages_total: 'counter',
  mqlite_store_size_bytes: 'gauge',
  mqlite_message_latency_seconds: 'histogram',
  mqlite_store_commit_duration_seconds: 'histogram',
  mqlite_store_commit_batch_size: 'histogram',
  mqlite_auth_failures_total: 'counter',
  mqlite_authorization_denied_total: 'counter',
  mqlite_limit_hits_total: 'counter',
}

const authorizer: Authorizer = {
  authenticate: (_client, username) => username !== 'bad',
  canPublish: (_client, topic) => !topic.startsWith('forbidden/') && !topic.startsWith('$SYS'),
  canSubscribe: () => true,
}

describe.each(storeConfigs())('the metrics endpoint ($name store)', ({ name: storeName, store }) => {
  let running: RunningBroker
  let base: string
  let listener: string
  const pool = createClientPool()

  beforeAll(async () => {
    running = await startBroker(
      {
        // an ack window no pause of a slow machine reaches (the held-messages test below)
        store: { ...store(), ackWindowMs: 60_000 },
        metrics: { enabled: true, host: '127.0.0.1', port: 0 },
        // $SYS deliveries would add to the sent counters this file asserts exactly.
        sys: { interval: 0 },
        mqtt: { maxPacketSize: 2048 },
      },
      { authorizer },
    )
    base = running.broker.metrics.server!.url
    listener = running.broker.listeners[0]!.name
  })
  afterEach(() => pool.closeAll())
  afterAll(() => running?.close())

  /** Counter movement between two scrapes. */
  const delta = (before: Exposition, after: Exposition, name: string, labels: Record<string, string> = {}) =>
    sampleValue(after, name, labels) - sampleValue(before, name, labels)

  /** Scrapes until `check` passes (counters are updated asynchronously to the client's acks). */
  async function settle(check: (e: Exposition) => void, timeoutMs = 3000): Promise<Exposition> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const e = await scrape(base)
      try {
        check(e)
        return e
      } catch (err) {
        if (Date.now() > deadline) throw err
        await sleep(25)
      }
    }
  }

  /** Waits until the connections of earlier tests are closed on the broker's side too. */
  const idle = () => settle((e) => expect(sampleValue(e, 'mqlite_connections', { listener })).toBe(0))

  it('serves every family with HELP and TYPE, the build version, and the process metrics', async () => {
    const res = await fetch(`${base}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const e = parseExposition(await res.text())
    for (const [name, type] of Object.entries(FAMILIES)) {
      const family = e.get(name)
      expect(family?.type, name).toBe(type)
      expect(family?.help?.length, `${name} has help`).toBeGreaterThan(10)
    }
    for (const family of e.values()) {
      expect(family.name, 'prefix').toMatch(/^mqlite_/)
      expect(family.type, family.name).toBeDefined()
      expect(family.help, family.name).toBeDefined()
      if (family.type === 'counter') expect(family.name).toMatch(/_total$/)
      else expect(family.name).not.toMatch(/_total$/)
      // bounded cardinality: no client ids or topics
      for (const s of family.samples) expect(Object.keys(s.labels)).not.toContain('client_id')
    }
    expect(sampleValue(e, 'mqlite_build_info', { version: PACKAGE_VERSION })).toBe(1)
    expect(sampleValue(e, 'mqlite_uptime_seconds')).toBeGreaterThan(0)
    for (const name of ['mqlite_process_cpu_seconds_total', 'mqlite_process_resident_memory_bytes', 'mqlite_nodejs_eventloop_lag_seconds', 'mqlite_nodejs_heap_size_used_bytes']) {
      expect(e.get(name), name).toBeDefined()
    }
    expect(e.get('mqlite_nodejs_gc_duration_seconds')?.type).toBe('histogram')
    const storeFamilies = ['mqlite_queued_messages', 'mqlite_inflight_messages', 'mqlite_store_size_bytes']
    for (const name of storeFamilies) {
      // The memory store has no such statistics: those series are absent rather than a fake 0.
      expect(e.get(name)?.samples.length, name).toBe(storeName === 'memory' ? 0 : 1)
    }
    expect(e.get('mqlite_store_held_messages_total')?.samples.length).toBe(storeName === 'memory' ? 0 : 2)
  })

  it('answers /healthz and /readyz with 200 while running, 404 elsewhere, 405 for POST', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    const ready = await fetch(`${base}/readyz`)
    expect([ready.status, await ready.text()]).toEqual([200, 'ready\n'])
    expect((await fetch(`${base}/nope`)).status).toBe(404)
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405)
  })

  it('counts PUBLISH in by sent QoS, out by delivered QoS, and times every delivery', async () => {
    const before = await scrape(base)
    const all = await pool.connect(running.url, { protocolVersion: 4 })
    const allInbox = collectMessages(all)
    await all.subscribeAsync('q/#', { qos: 2 })
    const low = await pool.connect(running.url, { protocolVersion: 5 })
    const lowInbox = collectMessages(low)
    await low.subscribeAsync('q/a', { qos: 0 })
    const pub = await pool.connect(running.url)
    const sends: Array<0 | 1 | 2> = [0, 1, 1, 2, 2, 2]
    for (const qos of sends) await pub.publishAsync('q/a', `m${qos}`, { qos })
    await allInbox.waitFor(6)
    await lowInbox.waitFor(6)
    const after = await settle((e) => expect(delta(before, e, 'mqlite_message_latency_seconds_count')).toBe(12))
    expect([0, 1, 2].map((qos) => delta(before, after, 'mqlite_messages_received_total', { qos: String(qos) }))).toEqual([1, 2, 3])
    // `all` gets each at its publish QoS; `low` gets all six at QoS 0
    expect([0, 1, 2].map((qos) => delta(before, after, 'mqlite_messages_sent_total', { qos: String(qos) }))).toEqual([7, 2, 3])
    const inf = delta(before, after, 'mqlite_message_latency_seconds_bucket', { le: '+Inf' })
    expect(inf).toBe(12)
    const sum = delta(before, after, 'mqlite_message_latency_seconds_sum')
    expect(sum).toBeGreaterThan(0)
    expect(sum).toBeLessThan(12 * 0.5)
    expect(delta(before, after, 'mqlite_messages_dropped_total', { reason: 'no_subscribers' })).toBe(0)
  })

  it('counts a PUBLISH that matched no subscription as dropped, unless it is retained', async () => {
    const before = await scrape(base)
    const pub = await pool.connect(running.url)
    await pub.publishAsync('nobody/here', 'lost', { qos: 1 })
    await pub.publishAsync('nobody/here', 'lost too', { qos: 0 })
    await pub.publishAsync('nobody/kept', 'retained', { qos: 1, retain: true })
    const after = await settle((e) => expect(delta(before, e, 'mqlite_messages_dropped_total', { reason: 'no_subscribers' })).toBe(2))
    expect(delta(before, after, 'mqlite_retained_messages')).toBe(1)
    await pub.publishAsync('nobody/kept', '', { qos: 1, retain: true })
    const cleared = await settle((e) => expect(delta(before, e, 'mqlite_retained_messages')).toBe(0))
    expect(delta(before, cleared, 'mqlite_messages_dropped_total', { reason: 'no_subscribers' })).toBe(2)
  })

  it('counts a QoS 1 PUBLISH queued for an offline session as matched, a QoS 0 one as dropped', async () => {
    const away = await pool.connect(running.url, { clientId: 'metrics-away', clean: false })
    await away.subscribeAsync('away/box', { qos: 1 })
    await away.endAsync()
    const before = await scrape(base)
    const pub = await pool.connect(running.url)
    await pub.publishAsync('away/box', 'queued', { qos: 1 })
    // the broker queues no QoS 0 message for an offline session (MQTT-3.1.2-5 lets it choose):
    // that one goes nowhere
    await pub.publishAsync('away/box', 'not queued', { qos: 0 })
    await pub.publishAsync('away/box', 'queued too', { qos: 1 })
    const after = await settle((e) => expect(delta(before, e, 'mqlite_messages_received_total', { qos: '1' })).toBe(2))
    expect(delta(before, after, 'mqlite_messages_dropped_total', { reason: 'no_subscribers' })).toBe(1)
    // end the session, which other tests count
    await (await pool.connect(running.url, { clientId: 'metrics-away', clean: true })).endAsync()
  })

  it('records a session whose client leaves while it is being set up as it left', async () => {
    const offline = (e: Exposition) => sampleValue(e, 'mqlite_sessions', { state: 'offline' })
    const offlineBefore = offline(await scrape(base))
    const pub = await pool.connect(running.url)
    // aedes says a client is ready once its stored queue is sent, after the CONNACK: a client that
    // leaves at once can be gone before it is "ready"
    const leaveAtOnce = async (first: IClientOptions, back: IClientOptions) => {
      const client = await pool.connect(running.url, first)
      await client.subscribeAsync(`gone/${first.clientId}`, { qos: 1 })
      await client.endAsync()
      for (let i = 0; i < 20; i++) await pub.publishAsync(`gone/${first.clientId}`, `queued ${i}`, { qos: 1 })
      await (await pool.connect(running.url, back)).endAsync()
    }
    await leaveAtOnce({ clientId: 'gone-clean', clean: false }, { clientId: 'gone-clean', clean: true })
    const kept = { protocolVersion: 5 as const, clientId: 'gone-kept', clean: false, properties: { sessionExpiryInterval: 1 } }
    await leaveAtOnce(kept, kept)
    await pub.endAsync()
    await settle((e) => expect(offline(e)).toBe(offlineBefore + 1))
    // the kept session's expiry runs from its disconnection: it ends, and nothing is left
    await sleep(2500)
    await settle((e) => expect(offline(e)).toBe(offlineBefore))
  })

  it('counts a message taken by a shared subscription as matched and sent', async () => {
    const member = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(member)
    await member.subscribeAsync('$share/workers/jobs/+', { qos: 1 })
    const before = await scrape(base)
    const pub = await pool.connect(running.url)
    await pub.publishAsync('jobs/1', 'work', { qos: 1 })
    await inbox.waitFor(1)
    const after = await settle((e) => expect(delta(before, e, 'mqlite_messages_sent_total', { qos: '1' })).toBe(1))
    expect(delta(before, after, 'mqlite_messages_dropped_total', { reason: 'no_subscribers' })).toBe(0)
  })

  it('counts refused publishes as not_authorized and oversized packets as too_large', async () => {
    const before = await scrape(base)
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    // [MQTT-3.3.4] v5: refused with PUBACK 0x87, connection kept
    await pub.publishAsync('forbidden/x', 'no', { qos: 1 }).catch(() => undefined)
    await settle((e) => expect(delta(before, e, 'mqlite_messages_dropped_total', { reason: 'not_authorized' })).toBe(1))
    const big = await pool.connect(running.url, { protocolVersion: 5 })
    const closed = new Promise<void>((resolve) => big.once('close', () => resolve()))
    big.publish('big/x', Buffer.alloc(4096), { qos: 0 })
    await closed
    const after = await settle((e) => expect(delta(before, e, 'mqlite_messages_dropped_total', { reason: 'too_large' })).toBe(1))
    expect(delta(before, after, 'mqlite_messages_dropped_total', { reason: 'not_authorized' })).toBe(1)
  })

  it('counts queued messages that expired before their session came back, and offline sessions', async () => {
    const clientId = `expiring-${Date.now()}`
    const session = { protocolVersion: 5 as const, clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
    const first = await pool.connect(running.url, session)
    await first.subscribeAsync('exp/t', { qos: 1 })
    await first.endAsync()
    const before = await settle((e) => expect(sampleValue(e, 'mqlite_sessions', { state: 'offline' })).toBe(1))
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync('exp/t', 'stale', { qos: 1, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync('exp/t', 'fresh', { qos: 1 })
    await sleep(1100)
    const back = await pool.connect(running.url, { ...session, clean: false })
    const inbox = collectMessages(back)
    const [msg] = await inbox.waitFor(1)
    expect(msg?.payload.toString()).toBe('fresh')
    const after = await settle((e) => expect(delta(before, e, 'mqlite_messages_dropped_total', { reason: 'expired' })).toBe(1))
    expect(sampleValue(after, 'mqlite_sessions', { state: 'offline' })).toBe(0)
    expect(delta(before, after, 'mqlite_messages_sent_total', { qos: '1' })).toBe(1)
  })

  it('tracks connections per listener, attempts by result and clients by protocol version', async () => {
    const before = await idle()
    await pool.connect(running.url, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'old-timer' })
    await pool.connect(running.url, { protocolVersion: 4 })
    await pool.connect(running.url, { protocolVersion: 5 })
    const refused = pool.raw(running.url, { protocolVersion: 4, username: 'bad', password: 'x' })
    await new Promise<void>((resolve) => refused.once('error', () => resolve()))
    const silent = await rawConnect(running.port)
    silent.close()
    await silent.closed

    const l = { listener }
    const during = await settle((e) => expect(delta(before, e, 'mqlite_connection_attempts_total', { ...l, result: 'failed' })).toBe(1))
    expect(delta(before, during, 'mqlite_connection_attempts_total', { ...l, result: 'accepted' })).toBe(3)
    // mqlite's authenticate hook refuses with CONNACK 5 (not authorized), whatever the reason
    expect(delta(before, during, 'mqlite_connection_attempts_total', { ...l, result: 'not_authorized' })).toBe(1)
    expect(delta(before, during, 'mqlite_connections', l)).toBe(3)
    expect(['3.1', '3.1.1', '5'].map((protocol) => delta(before, during, 'mqlite_clients_connected', { protocol }))).toEqual([1, 1, 1])
    expect(delta(before, during, 'mqlite_sessions', { state: 'online' })).toBe(3)

    await pool.closeAll()
    const after = await settle((e) => expect(delta(before, e, 'mqlite_connections', l)).toBe(0))
    expect(delta(before, after, 'mqlite_sessions', { state: 'online' })).toBe(0)
  })

  it('counts bytes at the socket, exactly what the client wrote and read', async () => {
    const before = await idle()
    const raw = await rawConnect(running.port)
    raw.send(connectPacket('byte-counter'))
    await raw.next((p) => p.cmd === 'connack')
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bytes/t', qos: 1 }] })
    await raw.next((p) => p.cmd === 'suback')
    raw.send({ cmd: 'publish', topic: 'bytes/t', payload: Buffer.from('x'.repeat(300)), qos: 1, messageId: 2, retain: false, dup: false })
    await raw.next((p) => p.cmd === 'puback')
    await raw.next((p) => p.cmd === 'publish')
    raw.send({ cmd: 'disconnect' })
    await raw.closed
    const written = raw.socket.bytesWritten
    const read = raw.socket.bytesRead
    expect(written).toBeGreaterThan(300)
    const after = await settle((e) => expect(delta(before, e, 'mqlite_connections', { listener })).toBe(0))
    expect(delta(before, after, 'mqlite_bytes_received_total', { listener })).toBe(written)
    expect(delta(before, after, 'mqlite_bytes_sent_total', { listener })).toBe(read)
  })

  it('counts subscriptions of connected clients', async () => {
    const before = await scrape(base)
    const c = await pool.connect(running.url)
    await c.subscribeAsync(['s/1', 's/2', 's/+/x'], { qos: 1 })
    await settle((e) => expect(delta(before, e, 'mqlite_subscriptions')).toBe(3))
    await c.unsubscribeAsync('s/2')
    await settle((e) => expect(delta(before, e, 'mqlite_subscriptions')).toBe(2))
  })

  it.runIf(storeName === 'sqlite')('times the SQLite store\'s commits and records their batch sizes', async () => {
    const before = await scrape(base)
    const c = await pool.connect(running.url)
    await c.publishAsync('commit/t', 'kept', { qos: 1, retain: true })
    const after = await settle((e) => expect(delta(before, e, 'mqlite_store_commit_duration_seconds_count')).toBeGreaterThan(0))
    const commits = delta(before, after, 'mqlite_store_commit_duration_seconds_count')
    expect(delta(before, after, 'mqlite_store_commit_batch_size_count')).toBe(commits)
    expect(delta(before, after, 'mqlite_store_commit_batch_size_sum')).toBeGreaterThanOrEqual(commits)
    expect(delta(before, after, 'mqlite_store_commit_duration_seconds_sum')).toBeGreaterThan(0)
  })

  it.runIf(storeName === 'sqlite')('counts held messages: acknowledged within the ack window, or written', async () => {
    const before = await scrape(base)
    const session = { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 60 } }
    const quick = await pool.connect(running.url, { ...session, clientId: 'held-quick' })
    await quick.subscribeAsync('held/quick', { qos: 1 })
    const slow = await pool.connect(running.url, { ...session, clientId: 'held-slow' })
    await slow.subscribeAsync('held/slow', { qos: 1 })
    let got = 0
    slow.handleMessage = () => void got++ // never acknowledged
    const pub = await pool.connect(running.url)
    await pub.publishAsync('held/quick', 'a', { qos: 1 })
    const acknowledged = await settle((e) => expect(delta(before, e, 'mqlite_store_held_messages_total', { outcome: 'acknowledged' })).toBe(1))
    expect(delta(before, acknowledged, 'mqlite_store_held_messages_total', { outcome: 'written' })).toBe(0)
    const published = pub.publishAsync('held/slow', 'b', { qos: 1 })
    await vi.waitFor(() => expect(got).toBe(1))
    slow.end(true) // its session's disconnection writes what is held for it
    await published
    const after = await settle((e) => expect(delta(before, e, 'mqlite_store_held_messages_total', { outcome: 'written' })).toBe(1))
    expect(delta(before, after, 'mqlite_store_held_messages_total', { outcome: 'acknowledged' })).toBe(1)
  })

  it.runIf(storeName === 'memory')('exposes the store commit histograms fed through observeCommit', async () => {
    // the memory store never commits: the only observations are these
    const before = await scrape(base)
    running.broker.metrics.observeCommit(12, 0.003)
    running.broker.metrics.observeCommit(1, 0.0004)
    const after = await scrape(base)
    const batch = (le: string) => delta(before, after, 'mqlite_store_commit_batch_size_bucket', { le })
    expect([batch('1'), batch('10'), batch('20'), batch('+Inf')]).toEqual([1, 1, 2, 2])
    expect(delta(before, after, 'mqlite_store_commit_batch_size_sum')).toBe(13)
    const duration = (le: string) => delta(before, after, 'mqlite_store_commit_duration_seconds_bucket', { le })
    expect([duration('0.00025'), duration('0.0005'), duration('0.0025'), duration('0.005')]).toEqual([0, 1, 1, 2])
    expect(delta(before, after, 'mqlite_store_commit_duration_seconds_count')).toBe(2)
  })

  it.skipIf(!HAS_PROMTOOL)('passes `promtool check metrics`', async () => {
    // traffic first, so histograms and labelled families have non-trivial samples
    const c = await pool.connect(running.url)
    await c.subscribeAsync('lint/#', { qos: 1 })
    await c.publishAsync('lint/x', 'y', { qos: 1 })
    const body = await (await fetch(`${base}/metrics`)).text()
    const result = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' })
    expect(`${result.stdout}${result.stderr}`).toBe('')
    expect(result.status).toBe(0)
  })
})

describe('with metrics and $SYS off', () => {
  it('installs no per-message hook and binds no HTTP port', async () => {
    const running = await startBroker({ metrics: { enabled: false }, sys: { interval: 0 } })
    try {
      const aedes = running.broker.aedes as unknown as { publish: unknown; authorizeForward: unknown; constructor: { prototype: { publish: unknown } } }
      expect(running.broker.metrics.instrumented).toBe(false)
      expect(running.broker.metrics.server).toBeUndefined()
      // publish is aedes's own prototype method, not a wrapper
      expect(Object.hasOwn(aedes, 'publish')).toBe(false)
      const pool = createClientPool()
      const c = await pool.connect(running.url)
      await c.subscribeAsync('t', { qos: 1 })
      await c.publishAsync('t', 'x', { qos: 1 })
      await pool.closeAll()
      expect(running.broker.metrics.stats.received).toEqual(new Float64Array(3))
    } finally {
      await running.close()
    }
  })
})
