import mqtt from 'mqtt'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js'
import { collectMessages, createClientPool, sleep, type Received } from '../helpers/mqtt-clients.js'
import { tempDir } from '../helpers/stores.js'

// What survives a restart of the broker process on the SQLite store, after a clean stop and after
// kill -9: retained messages, wills of clients that were connected, and session expiry that
// counts the time the broker was down.
describe('restarts (SQLite store)', () => {
  const pool = createClientPool()
  let broker: ChildBroker | undefined
  afterEach(async () => {
    await pool.closeAll()
    await broker?.kill()
    broker = undefined
  })

  const start = async (db: string, port = 0) =>
    (broker = await spawnBroker(['--store', 'sqlite', '--db', db, '--port', String(port), '--no-metrics']))
  /** Starts a broker on a new database file `name`; resolves with its path, for the restarts. */
  const startNew = async (name: string): Promise<string> => {
    const db = join(tempDir(), name)
    await start(db)
    return db
  }
  /** the running broker's URL (its port changes at each start) */
  const url = () => `mqtt://127.0.0.1:${broker!.port}`

  it.each(['SIGTERM', 'SIGKILL'] as const)('keeps retained messages across a restart (%s)', async (signal) => {
    const db = await startNew('retained.db')
    const pub = await pool.connect(url(), { protocolVersion: 5 })
    await pub.publishAsync('keep/a', 'A', { qos: 1, retain: true })
    await pub.publishAsync('keep/b', 'B', { qos: 1, retain: true, properties: { contentType: 'text/plain' } })
    await pub.publishAsync('keep/b', 'B2', { qos: 1, retain: true })
    await pub.publishAsync('keep/a', '', { qos: 1, retain: true }) // cleared
    await pool.closeAll()
    if (signal === 'SIGKILL') await broker!.kill()
    else expect(await broker!.stop('SIGTERM')).toBe(0)

    await start(db)
    const sub = await pool.connect(url(), { protocolVersion: 5 })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('keep/#', { qos: 1 })
    await inbox.waitFor(1)
    await sleep(200)
    expect(inbox.messages.map((m) => [m.topic, m.payload.toString(), m.packet.retain])).toEqual([['keep/b', 'B2', true]])
  })

  /**
   * Connects a device with a will, kills the broker under it, restarts on the same database and
   * watches `status/#`: the will left behind is the first thing to arrive.
   */
  async function willAfterKill(name: string, options: mqtt.IClientOptions): Promise<{ will: Received | undefined; waitedMs: number }> {
    const db = await startNew(`${name}.db`)
    const device = mqtt.connect(url(), { protocolVersion: 5, reconnectPeriod: 0, ...options })
    device.on('error', () => {})
    await new Promise((resolve) => device.once('connect', resolve))
    await broker!.kill()
    device.end(true)

    await start(db)
    const watcher = await pool.connect(url(), { protocolVersion: 5 })
    const inbox = collectMessages(watcher)
    await watcher.subscribeAsync('status/#', { qos: 1 })
    const subscribedAt = Date.now()
    const [will] = await inbox.waitFor(1, 5000)
    return { will, waitedMs: Date.now() - subscribedAt }
  }

  it('publishes the will of a client that was connected when the broker was killed', async () => {
    const { will } = await willAfterKill('wills', {
      clientId: 'device-7',
      will: { topic: 'status/device-7', payload: Buffer.from('offline'), qos: 1, retain: true },
    })
    expect([will?.topic, will?.payload.toString()]).toEqual(['status/device-7', 'offline'])
  })

  it('[MQTT-3.1.3-9] waits the Will Delay Interval before publishing a will left by a killed run', async () => {
    const { will, waitedMs } = await willAfterKill('delayed-will', {
      clientId: 'device-8',
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'status/device-8', payload: Buffer.from('offline'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
    })
    expect(will?.payload.toString()).toBe('offline')
    expect(waitedMs).toBeGreaterThan(500)
  })

  it('keeps a persistent shared-subscription member and its queue across a restart', async () => {
    const db = await startNew('shared.db')
    const member = { protocolVersion: 5 as const, clientId: 'shared-member', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const first = await pool.connect(url(), member)
    await first.subscribeAsync('$share/workers/jobs/#', { qos: 1 })
    await first.endAsync()
    const before = await pool.connect(url(), { protocolVersion: 5 })
    await before.publishAsync('jobs/1', 'queued before the restart', { qos: 1 })
    await pool.closeAll()
    expect(await broker!.stop('SIGTERM')).toBe(0)

    await start(db)
    const after = await pool.connect(url(), { protocolVersion: 5 })
    // the group is known from the store although its only member is offline
    await after.publishAsync('jobs/2', 'queued after the restart', { qos: 1 })
    const back = pool.raw(url(), member)
    const inbox = collectMessages(back)
    const got = await inbox.waitFor(2)
    expect(got.map((m) => m.payload.toString())).toEqual(['queued before the restart', 'queued after the restart'])
  })

  // A QoS 1 message for a connected persistent session is held in memory until its PUBACK; the
  // publisher's PUBACK waits until the message is written (the subscriber's ack window passed).
  it('a message an online persistent subscriber got and did not acknowledge is back after kill -9, under its packet id', async () => {
    const db = await startNew('in-flight.db')
    const session = { protocolVersion: 5 as const, clientId: 'slow-acker', clean: false, properties: { sessionExpiryInterval: 3600 } }
    const sub = await pool.connect(url(), session)
    await sub.subscribeAsync('work/#', { qos: 1 })
    const got: mqtt.IPublishPacket[] = []
    sub.handleMessage = (packet) => void got.push(packet) // never acknowledges
    const pub = await pool.connect(url(), { protocolVersion: 5 })
    await pub.publishAsync('work/1', 'job', { qos: 1 })
    await vi.waitFor(() => expect(got).toHaveLength(1))
    await broker!.kill()
    await pool.closeAll()

    await start(db)
    const inbox = collectMessages(pool.raw(url(), session))
    const [again] = await inbox.waitFor(1)
    expect([again!.payload.toString(), again!.packet.messageId, again!.packet.dup]).toEqual(['job', got[0]!.messageId, true])
  })

  it('[MQTT-3.1.2-23] counts the time the broker was down toward session expiry', async () => {
    const db = await startNew('expiry.db')
    const session = (expiry: number, clientId: string) => ({
      protocolVersion: 5 as const,
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: expiry },
    })
    for (const [clientId, expiry] of [['short-lived', 1], ['long-lived', 3600]] as const) {
      const c = await pool.connect(url(), session(expiry, clientId))
      await c.subscribeAsync('expiry/t', { qos: 1 })
      await c.endAsync()
    }
    expect(await broker!.stop('SIGTERM')).toBe(0)
    await sleep(1500) // longer than the short session's expiry, while the broker is down

    await start(db)
    const pub = await pool.connect(url(), { protocolVersion: 5 })
    await pub.publishAsync('expiry/t', 'after the restart', { qos: 1 })
    for (const [clientId, expiry, present] of [['short-lived', 1, false], ['long-lived', 3600, true]] as const) {
      const back = pool.raw(url(), session(expiry, clientId))
      const inbox = collectMessages(back)
      const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => back.once('connect', resolve))
      expect([clientId, connack.sessionPresent]).toEqual([clientId, present])
      await sleep(300)
      expect(inbox.messages.length).toBe(present ? 1 : 0)
    }
  })
})
