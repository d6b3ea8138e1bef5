import { statSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { StoreCommitError } from '../../src/persistence/errors.js'
import { poisonRetainedTopic, storeFixtures } from '../helpers/store-fixtures.js'
import type { SqlitePersistenceOptions } from '../../src/persistence/options.js'
import { SqlitePersistence, type PacketLike } from '../../src/persistence/sqlite-persistence.js'

// A QoS 1 message queued for one connected session is held in memory: acknowledged soon after it
// went out, it is never written; otherwise it is written with its packet id. Its enqueue promise
// (the publisher's PUBACK) settles at whichever comes first.

const { dbPath, track } = storeFixtures()

async function open(path: string, options: Partial<SqlitePersistenceOptions> = {}): Promise<SqlitePersistence> {
  const store = new SqlitePersistence({ path, ackWindowMs: 30, ...options })
  track(store)
  await store.setup({ id: 'b', counter: 0 })
  for (const id of ['c', 'd']) await store.sessionConnected(id, { expiryIntervalSeconds: 3600, protocolVersion: 5 })
  return store
}

const message = (n: number, extra: Partial<PacketLike> = {}): PacketLike => ({
  cmd: 'publish', topic: 't', payload: Buffer.from(`m${n}`), qos: 1, retain: false, dup: false, brokerId: 'b', brokerCounter: n, ...extra,
})
const queued = async (store: SqlitePersistence, id = 'c') =>
  ((await store.outgoingStream({ id }).toArray()) as PacketLike[]).map((p) => [String(p.payload), p.messageId])

/** Whether the promise settled by the time a few event-loop turns have passed. */
async function settledSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false
  promise.then(() => (settled = true), () => (settled = true))
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
  return settled
}

const walBytes = (path: string): number => statSync(`${path}-wal`).size

describe('held messages (SQLite store)', () => {
  test('acknowledged within its window: never written, and the enqueue settles at the acknowledgement', async () => {
    const path = dbPath('held.db')
    // a window no pause of a slow machine reaches
    const store = await open(path, { ackWindowMs: 60_000 })
    // the session's first queued message gives it its row in the clients table
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(0, { qos: 2 }))
    await store.outgoingClearMessageId({ id: 'c' }, { brokerId: 'b', brokerCounter: 0 })
    await store.flush()
    const before = walBytes(path)
    const durable = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    expect(store.stats()).toMatchObject({ queued: 1, inflight: 0 })
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 1 })
    expect(await settledSoon(durable)).toBe(false)
    const acked = await store.outgoingClearMessageId({ id: 'c' }, { messageId: 5 })
    expect(acked).toMatchObject({ topic: 't', payload: Buffer.from('m1'), messageId: 5, brokerCounter: 1 })
    await durable
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 0 })
    await store.flush() // writes whatever is still held: nothing
    expect(walBytes(path)).toBe(before)
    expect(await queued(store)).toEqual([])
  })

  test('outgoingUpdateNow and outgoingClearMessageIdNow answer for held messages only', async () => {
    const store = await open(dbPath('held.db'), { ackWindowMs: 60_000 })
    const durable = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    expect(store.outgoingUpdateNow({ id: 'c' }, { ...message(1), messageId: 5 })).toBe(true)
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 1 })
    // a written message: the promise methods must do it
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2, { qos: 2 }))
    expect(store.outgoingUpdateNow({ id: 'c' }, { ...message(2, { qos: 2 }), messageId: 6 })).toBe(false)
    await store.outgoingUpdate({ id: 'c' }, { ...message(2, { qos: 2 }), messageId: 6 })
    expect(store.outgoingClearMessageIdNow({ id: 'c' }, { messageId: 6 })).toBeUndefined()
    // a client without a stored session has nothing to clear
    expect(store.outgoingClearMessageIdNow({ id: 'clean' }, { messageId: 6 })).toBeNull()
    expect(store.outgoingClearMessageIdNow({ id: 'c' }, { messageId: 5 })).toMatchObject({ payload: Buffer.from('m1'), messageId: 5 })
    await durable
    expect(await queued(store)).toEqual([['m2', 6]])
    await store.close()
    expect(store.outgoingUpdateNow({ id: 'c' }, { ...message(3), messageId: 7 })).toBe(false)
    expect(store.outgoingClearMessageIdNow({ id: 'c' }, { messageId: 6 })).toBeUndefined()
  })

  test('not acknowledged within its window: written with its packet id, the enqueue settles at that commit', async () => {
    const path = dbPath('held.db')
    const store = await open(path)
    const durable = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 7 })
    const started = Date.now()
    await durable
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
    await store.close()
    const reopened = await open(path)
    expect(await queued(reopened)).toEqual([['m1', 7]])
    // a late acknowledgement finds the written row
    expect(await reopened.outgoingClearMessageId({ id: 'c' }, { messageId: 7 })).toMatchObject({ payload: Buffer.from('m1') })
    expect(await queued(reopened)).toEqual([])
  })

  test('one that did not go out is written when its publisher waits (outgoingAwaited); its delivery then updates the row', async () => {
    const store = await open(dbPath('held.db'))
    const durable = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    store.outgoingAwaited(message(1))
    await durable
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 9 })
    expect(await queued(store)).toEqual([['m1', 9]])
  })

  test('one that never goes out is written after 50 windows, without anyone asking', async () => {
    const store = await open(dbPath('held.db'), { ackWindowMs: 2 })
    const started = Date.now()
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    expect(Date.now() - started).toBeGreaterThanOrEqual(95)
    expect(await queued(store)).toEqual([['m1', undefined]])
  })

  test('the queue stream, a session wipe and close write what is held first', async () => {
    const path = dbPath('held.db')
    const store = await open(path, { ackWindowMs: 60_000 })
    const first = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 3 })
    const second = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2))
    expect(await queued(store)).toEqual([['m1', 3], ['m2', undefined]])
    await Promise.all([first, second])

    const wiped = store.outgoingEnqueueCombi([{ clientId: 'd' }], message(3))
    await store.deleteSession('d')
    await wiped
    expect(await queued(store, 'd')).toEqual([])

    const third = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(4))
    await store.outgoingUpdate({ id: 'c' }, { ...message(4), messageId: 4 })
    await store.close()
    await third
    expect(await queued(await open(path))).toEqual([['m1', 3], ['m2', undefined], ['m4', 4]])
  })

  test('held only for QoS 1 to one connected session of this broker, once per message', async () => {
    const store = await open(dbPath('held.db'), { ackWindowMs: 60_000 })
    await store.sessionDisconnected('d')
    // each of these is written at the next commit, so it settles without an acknowledgement
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1, { qos: 2 }))
    await store.outgoingEnqueueCombi([{ clientId: 'd' }], message(2))
    await store.outgoingEnqueueCombi([{ clientId: 'c' }, { clientId: 'c' }], message(3))
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(4, { brokerId: 'other' }))
    await store.outgoingEnqueue({ clientId: 'c' }, message(5))
    // two variants of one message for two sessions: the first is held, the second is not
    const held = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(6))
    await store.sessionConnected('d', { expiryIntervalSeconds: 3600, protocolVersion: 5 })
    store.outgoingAwaited(message(6))
    await held
    const variantHeld = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(7))
    await store.outgoingEnqueueCombi([{ clientId: 'd' }], message(7, { payload: Buffer.from('m7 for d') }))
    expect(await settledSoon(variantHeld)).toBe(false)
    store.outgoingAwaited(message(7))
    await variantHeld
    expect(await queued(store)).toEqual([['m1', undefined], ['m2', undefined], ['m3', undefined], ['m3', undefined], ['m4', undefined], ['m5', undefined], ['m6', undefined], ['m7', undefined]].filter(([p]) => p !== 'm2'))
    expect(await queued(store, 'd')).toEqual([['m2', undefined], ['m7 for d', undefined]])
  })

  test('one its session will not get (No Local) is cleared by its broker counter without being written', async () => {
    const path = dbPath('held.db')
    const store = await open(path, { ackWindowMs: 60_000 })
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(0, { qos: 2 })) // the session's row
    await store.outgoingClearMessageId({ id: 'c' }, { brokerId: 'b', brokerCounter: 0 })
    await store.flush()
    const before = walBytes(path)
    const durable = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    expect(await store.outgoingClearMessageId({ id: 'c' }, { brokerId: 'b', brokerCounter: 1 })).toMatchObject({ payload: Buffer.from('m1') })
    await durable
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 0 })
    await store.flush()
    expect(walBytes(path)).toBe(before)
    expect(await queued(store)).toEqual([])
  })

  test("other clients' connections, subscriptions and wills leave held messages in memory", async () => {
    const store = await open(dbPath('held.db'), { ackWindowMs: 60_000 })
    const durable = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    await store.sessionConnected('e', { expiryIntervalSeconds: 3600, protocolVersion: 5 })
    await store.addSubscriptions({ id: 'e' }, [{ topic: 'x/#', qos: 1 }])
    await store.putWill({ id: 'e' }, { topic: 'e/gone', payload: Buffer.from('bye'), qos: 1, retain: false })
    await store.outgoingClearMessageId({ id: 'c' }, { messageId: 5 })
    await durable
    expect(store.stats().held).toEqual({ acknowledged: 1, written: 0 })
    // a session leaving does write them: no acknowledgement will come on that connection
    const left = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2))
    await store.sessionDisconnected('d')
    await left
    expect(store.stats().held).toEqual({ acknowledged: 1, written: 1 })
  })

  test('a packet id given again while the first message held with it is unacknowledged: both are written', async () => {
    const store = await open(dbPath('held.db'), { ackWindowMs: 60_000 })
    const first = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    const second = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2))
    await store.outgoingUpdate({ id: 'c' }, { ...message(2), messageId: 5 })
    await Promise.all([first, second])
    expect(await queued(store)).toEqual([['m1', 5], ['m2', 5]])
  })

  test("the patched aedes's listener is told once, at the acknowledgement; no promise per message", async () => {
    const store = await open(dbPath('held.db'), { ackWindowMs: 60_000 })
    const told: Array<Error | null> = []
    store.outgoingEnqueueCombiNotify([{ clientId: 'c' }], message(1), { stored: (err) => told.push(err) })
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(told).toEqual([])
    await store.outgoingClearMessageId({ id: 'c' }, { messageId: 5 })
    expect(told).toEqual([null])
    expect(store.stats().held).toEqual({ acknowledged: 1, written: 0 })
  })

  test('a failed commit fails the held messages with it: their publishers get the error, not a PUBACK', async () => {
    const path = dbPath('held.db')
    const store = await open(path, { ackWindowMs: 60_000 })
    poisonRetainedTopic(path)
    const sent = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    const unsent = store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2))
    const poisoned = store.storeRetained({ cmd: 'publish', topic: 'poison', payload: Buffer.from('x'), qos: 0, retain: true })
    const results = await Promise.allSettled([sent, unsent, poisoned])
    for (const result of results) expect((result as PromiseRejectedResult).reason).toBeInstanceOf(StoreCommitError)
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 0, held: { acknowledged: 0, written: 0 } })
    expect(await queued(store)).toEqual([])
  })

  test('ackWindowMs 0 writes every message at once', async () => {
    const store = await open(dbPath('held.db'), { ackWindowMs: 0 })
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    expect(await queued(store)).toEqual([['m1', undefined]])
  })
})
