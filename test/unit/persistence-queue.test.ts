import Database from 'better-sqlite3'
import { afterEach, describe, expect, test } from 'vitest'
import { queuedCopiesOnDisk, rowsOnDisk, poisonRetainedTopic, storeFixtures } from '../helpers/store-fixtures.js'
import { QueueFullError } from '../../src/persistence/errors.js'
import type { DropReason, SqlitePersistenceOptions } from '../../src/persistence/options.js'
import { SqlitePersistence, type PacketLike } from '../../src/persistence/sqlite-persistence.js'

const stores: SqlitePersistence[] = []
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()))
})

type Drop = [DropReason, number, string]

async function open(options: Partial<SqlitePersistenceOptions> = {}): Promise<{ store: SqlitePersistence; drops: Drop[] }> {
  const drops: Drop[] = []
  const store = new SqlitePersistence({ path: ':memory:', onDrop: (...args) => drops.push(args), ...options })
  stores.push(store)
  await store.setup({ id: 'b', counter: 0 })
  return { store, drops }
}

function message(n: number, extra: Partial<PacketLike> = {}): PacketLike {
  return { cmd: 'publish', topic: 't', payload: Buffer.from(`m${n}`), qos: 1, retain: false, dup: false, brokerId: 'b', brokerCounter: n, ...extra }
}

async function queued(store: SqlitePersistence, clientId: string): Promise<PacketLike[]> {
  return (await store.outgoingStream({ id: clientId }).toArray()) as PacketLike[]
}

const payloads = (list: PacketLike[]) => list.map((p) => String(p.payload))

describe('queue bounds: drop-oldest', () => {
  test('keeps the newest maxQueuedMessages messages and reports each drop', async () => {
    const { store, drops } = await open({ maxQueuedMessages: 3, queuePolicy: 'drop-oldest' })
    for (let n = 1; n <= 5; n++) await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(n))
    expect(payloads(await queued(store, 'c'))).toEqual(['m3', 'm4', 'm5'])
    expect(drops).toEqual([['queue_full', 1, 'c'], ['queue_full', 1, 'c']])
    expect(store.stats().queued).toBe(3)
  })

  test('an offline session reads its oldest rows ahead: a row gone meanwhile is skipped, the next oldest goes', async () => {
    const { store, drops } = await open({ maxQueuedMessages: 3, queuePolicy: 'drop-oldest' })
    // m4 reads m1..m3 ahead and drops m1; m5 drops m2 from what was read
    for (let n = 1; n <= 5; n++) await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(n))
    expect(payloads(await queued(store, 'c'))).toEqual(['m3', 'm4', 'm5'])
    // the oldest queued copy cleared another way (as a session's expiry empties its queue)
    expect(await store.outgoingClearMessageId({ id: 'c' }, undefined)).toMatchObject({ payload: Buffer.from('m3') })
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(6))
    // m3, read ahead, is gone: m4 is the one dropped
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(7))
    expect(payloads(await queued(store, 'c'))).toEqual(['m5', 'm6', 'm7'])
    expect(drops).toEqual([['queue_full', 1, 'c'], ['queue_full', 1, 'c'], ['queue_full', 1, 'c']])
    expect(store.stats().queued).toBe(3)
  })

  test('never drops in-flight messages: the oldest queued ones go first', async () => {
    const { store } = await open({ maxQueuedMessages: 3 })
    for (let n = 1; n <= 3; n++) await store.outgoingEnqueue({ clientId: 'c' }, message(n))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 101 })
    await store.outgoingUpdate({ id: 'c' }, { ...message(2), messageId: 102 })
    await store.outgoingEnqueue({ clientId: 'c' }, message(4))
    const list = await queued(store, 'c')
    expect(payloads(list)).toEqual(['m1', 'm2', 'm4'])
    expect(list.map((p) => p.messageId)).toEqual([101, 102, undefined])
    expect(store.stats()).toMatchObject({ queued: 1, inflight: 2 })
    // everything in flight: the new message is the one not queued
    await store.outgoingUpdate({ id: 'c' }, { ...message(4), messageId: 104 })
    await store.outgoingEnqueue({ clientId: 'c' }, message(5))
    expect(payloads(await queued(store, 'c'))).toEqual(['m1', 'm2', 'm4'])
  })

  test('maxQueuedBytes counts payload bytes; a message larger than the limit is not queued', async () => {
    const { store, drops } = await open({ maxQueuedBytes: 10 })
    const sized = (n: number, size: number) => message(n, { payload: Buffer.alloc(size, 65 + n) })
    await store.outgoingEnqueue({ clientId: 'c' }, sized(1, 4))
    await store.outgoingEnqueue({ clientId: 'c' }, sized(2, 4))
    await store.outgoingEnqueue({ clientId: 'c' }, sized(3, 4)) // drops #1
    expect((await queued(store, 'c')).map((p) => p.brokerCounter)).toEqual([2, 3])
    await store.outgoingEnqueue({ clientId: 'c' }, sized(4, 11)) // can never fit: #2, #3 stay
    expect((await queued(store, 'c')).map((p) => p.brokerCounter)).toEqual([2, 3])
    expect(drops).toEqual([['queue_full', 1, 'c'], ['queue_full', 1, 'c']])
  })

  test('limits are per session', async () => {
    const { store } = await open({ maxQueuedMessages: 1 })
    await store.outgoingEnqueueCombi([{ clientId: 'a' }, { clientId: 'b' }], message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'b' }], message(2))
    expect(payloads(await queued(store, 'a'))).toEqual(['m1'])
    expect(payloads(await queued(store, 'b'))).toEqual(['m2'])
  })
})

describe('queue bounds: refuse', () => {
  test('outgoingEnqueue rejects with QueueFullError for a full session', async () => {
    const { store, drops } = await open({ maxQueuedMessages: 2, queuePolicy: 'refuse' })
    await store.outgoingEnqueue({ clientId: 'c' }, message(1))
    await store.outgoingEnqueue({ clientId: 'c' }, message(2))
    const error = await store.outgoingEnqueue({ clientId: 'c' }, message(3)).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(QueueFullError)
    expect(error).toMatchObject({ code: 'ERR_QUEUE_FULL', clientId: 'c' })
    expect(payloads(await queued(store, 'c'))).toEqual(['m1', 'm2'])
    expect(drops).toEqual([['queue_full', 1, 'c']])
  })

  test('outgoingEnqueueCombi still queues for the other sessions and resolves', async () => {
    const { store, drops } = await open({ maxQueuedMessages: 1, queuePolicy: 'refuse' })
    await store.outgoingEnqueue({ clientId: 'full' }, message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'full' }, { clientId: 'other' }], message(2))
    expect(payloads(await queued(store, 'full'))).toEqual(['m1'])
    expect(payloads(await queued(store, 'other'))).toEqual(['m2'])
    expect(drops).toEqual([['queue_full', 1, 'full']])
  })

  test('a delivery update for a message that was never queued resolves (no disconnect)', async () => {
    const { store } = await open({ maxQueuedMessages: 1, queuePolicy: 'refuse' })
    await store.outgoingEnqueue({ clientId: 'c' }, message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2))
    await expect(store.outgoingUpdate({ id: 'c' }, { ...message(2), messageId: 9 })).resolves.toBeUndefined()
    expect((await queued(store, 'c')).map((p) => p.messageId)).toEqual([undefined])
  })
})

describe('message expiry', () => {
  test('expired queued messages are skipped, deleted and reported; the rest carry the time left', async () => {
    const { store, drops } = await open()
    const now = Date.now()
    await store.outgoingEnqueue({ clientId: 'c' }, message(1, { messageExpiry: now - 1 }))
    await store.outgoingEnqueue({ clientId: 'c' }, message(2, { messageExpiry: now + 2_500, properties: { contentType: 'text/plain' } }))
    await store.outgoingEnqueue({ clientId: 'c' }, message(3))
    await store.outgoingEnqueue({ clientId: 'c' }, message(4, { messageExpiry: now - 1 }))
    // in flight already: its delivery started, so it is completed even though expired
    await store.outgoingUpdate({ id: 'c' }, { ...message(4), messageId: 44 })

    const list = await queued(store, 'c')
    expect(list.map((p) => p.brokerCounter)).toEqual([2, 3, 4])
    expect(list[0]?.properties).toEqual({ contentType: 'text/plain', messageExpiryInterval: 3 })
    expect(list[1]?.properties).toBeUndefined()
    await store.flush()
    expect(drops).toEqual([['expired', 1, 'c']])
    expect(store.stats()).toMatchObject({ queued: 2, inflight: 1 })
    expect((await queued(store, 'c')).map((p) => p.brokerCounter)).toEqual([2, 3, 4])
  })
})

describe('outgoing queue semantics beyond the conformance suite', () => {
  test('streams in order across pages, including PUBREL records, and only rows present at creation', async () => {
    const { store } = await open({ pageSize: 2 })
    for (let n = 1; n <= 5; n++) await store.outgoingEnqueue({ clientId: 'c' }, message(n, { qos: 2 }))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1, { qos: 2 }), messageId: 1 })
    await store.outgoingUpdate({ id: 'c' }, { cmd: 'pubrel', messageId: 1 })
    const stream = store.outgoingStream({ id: 'c' })
    await store.outgoingEnqueue({ clientId: 'c' }, message(6))
    const list = await stream.toArray()
    expect(list.map((p) => p.cmd)).toEqual(['pubrel', 'publish', 'publish', 'publish', 'publish'])
    expect(list.map((p) => p.brokerCounter)).toEqual([undefined, 2, 3, 4, 5])
    expect(list[0]).toEqual({ cmd: 'pubrel', messageId: 1 })
  })

  test('clearing without a packet id drops the queued copy of that message only', async () => {
    const { store } = await open()
    // one client with two matching subscriptions gets two copies of message 1
    await store.outgoingEnqueueCombi([{ clientId: 'c' }, { clientId: 'c' }], message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 7 })
    const cleared = await store.outgoingClearMessageId({ id: 'c' }, { ...message(1), messageId: undefined })
    expect(cleared).toMatchObject({ brokerCounter: 1, messageId: undefined })
    let list = await queued(store, 'c')
    expect(list.map((p) => [p.brokerCounter, p.messageId])).toEqual([[1, 7], [2, undefined]])
    // no copy left without a packet id: nothing else is touched
    expect(await store.outgoingClearMessageId({ id: 'c' }, { ...message(1), messageId: undefined })).toBeUndefined()
    list = await queued(store, 'c')
    expect(list).toHaveLength(2)
  })

  test('packet id reuse by another message of the same broker is not mistaken for it', async () => {
    const { store } = await open()
    await store.outgoingEnqueue({ clientId: 'c' }, message(1))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    // message 2 was never queued (e.g. queue full) and got the same packet id
    await store.outgoingUpdate({ id: 'c' }, { ...message(2), messageId: 5 })
    const [only] = await queued(store, 'c')
    expect(only).toMatchObject({ brokerCounter: 1, payload: Buffer.from('m1'), messageId: 5 })
  })

  test('queued packets are v8-serialized: Buffer payloads, undefined fields and MQTT 5 properties survive', async () => {
    const { store } = await open()
    const properties = { userProperties: { a: ['1', '2'] }, correlationData: Buffer.from([1, 2]), topicAlias: undefined }
    await store.outgoingEnqueue({ clientId: 'c' }, message(1, { properties }))
    const [packet] = await queued(store, 'c')
    expect(Buffer.isBuffer(packet?.payload)).toBe(true)
    expect(packet?.properties).toEqual(properties)
    expect(Object.hasOwn(packet?.properties ?? {}, 'topicAlias')).toBe(true)
  })

  test('a subscriber that acknowledges everything leaves nothing behind', async () => {
    const { store } = await open()
    for (let n = 1; n <= 3; n++) await store.outgoingEnqueue({ clientId: 'c' }, message(n))
    for (const packet of await queued(store, 'c')) {
      const messageId = Number(packet.brokerCounter) + 100
      await store.outgoingUpdate({ id: 'c' }, { ...packet, messageId })
      expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId })).toMatchObject({ messageId })
    }
    expect(await queued(store, 'c')).toEqual([])
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 0 })
  })
})

describe('shared message bodies', () => {
  const fixtures = storeFixtures()
  test('a message queued for several sessions is stored once and deleted with its last row', async () => {
    const path = fixtures.dbPath('q.db')
    const { store } = await open({ path })
    const onDisk = (): number[] => [queuedCopiesOnDisk(path), rowsOnDisk(path, 'bodies')]
    await store.outgoingEnqueueCombi([{ clientId: 'a' }, { clientId: 'b' }, { clientId: 'c' }], message(1))
    expect(onDisk()).toEqual([3, 1])
    // a's copy becomes a PUBREL record with a body of its own; b's is delivered and acknowledged
    await store.outgoingUpdate({ id: 'a' }, { ...message(1), messageId: 7 })
    await store.outgoingUpdate({ id: 'a' }, { cmd: 'pubrel', messageId: 7 })
    await store.outgoingUpdate({ id: 'b' }, { ...message(1), messageId: 8 })
    await store.outgoingClearMessageId({ id: 'b' }, { messageId: 8 })
    expect(onDisk()).toEqual([2, 2])
    expect((await queued(store, 'a'))[0]).toMatchObject({ cmd: 'pubrel', messageId: 7 })
    expect(payloads(await queued(store, 'c'))).toEqual(['m1'])
    await store.outgoingClearMessageId({ id: 'a' }, { messageId: 7 })
    await store.outgoingClearMessageId({ id: 'c' }, message(1))
    expect(onDisk()).toEqual([0, 0])
  })

  test('more than 1024 copies of one message for one session keep their order and are all found', async () => {
    const { store } = await open()
    const copies = 1030
    await store.outgoingEnqueueCombi(Array.from({ length: copies }, () => ({ clientId: 'c' })), message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2))
    let list = await queued(store, 'c')
    expect(list).toHaveLength(copies + 1)
    expect(list.at(-1)?.brokerCounter).toBe(2)
    // by broker counter without a packet id (aedes dropping extra copies), past the 1024th copy
    for (let i = 0; i < copies - 2; i++) expect(await store.outgoingClearMessageId({ id: 'c' }, message(1))).toMatchObject({ brokerCounter: 1 })
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 9 })
    list = await queued(store, 'c')
    expect(list.map((p) => [p.brokerCounter, p.messageId])).toEqual([[1, 9], [1, undefined], [2, undefined]])
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 9 })).toMatchObject({ brokerCounter: 1 })
    expect(await store.outgoingClearMessageId({ id: 'c' }, message(1))).toMatchObject({ brokerCounter: 1 })
    expect(payloads(await queued(store, 'c'))).toEqual(['m2'])
    expect(store.stats()).toMatchObject({ queued: 1, inflight: 0 })
  })
})

describe('queued runs: copies for offline sessions, one row per session and commit', () => {
  const fixtures = storeFixtures()
  /** Enqueues messages `from`..`to` for `clientIds` in one event-loop turn: one batch. */
  const enqueueTogether = (store: SqlitePersistence, clientIds: string[], from: number, to: number) =>
    Promise.all(Array.from({ length: to - from + 1 }, (_, i) => store.outgoingEnqueueCombi(clientIds.map((clientId) => ({ clientId })), message(from + i))))
  const counters = (list: PacketLike[]) => list.map((p) => p.brokerCounter)
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

  test('offline copies share a run, a connected session gets rows, and the stream reads them all in order', async () => {
    const path = fixtures.dbPath()
    // ackWindowMs 0: the connected session's copy is written at once, not held for its PUBACK
    const { store } = await open({ path, pageSize: 3, ackWindowMs: 0 })
    await enqueueTogether(store, ['c', 'd'], 1, 5)
    expect([rowsOnDisk(path, 'queued_runs'), rowsOnDisk(path, 'outgoing'), queuedCopiesOnDisk(path)]).toEqual([2, 0, 10])
    await store.sessionConnected('c', { expiryIntervalSeconds: 60, protocolVersion: 5 })
    await enqueueTogether(store, ['c'], 6, 6)
    await store.sessionDisconnected('c')
    await enqueueTogether(store, ['c'], 7, 10)
    // fewer than four copies of one commit for a session: rows (a run row is a statement of its own)
    await enqueueTogether(store, ['c'], 11, 12)
    expect([rowsOnDisk(path, 'queued_runs'), rowsOnDisk(path, 'outgoing')]).toEqual([3, 3])
    expect(store.stats()).toMatchObject({ queued: 17, inflight: 0 })
    // pages of three: the runs become rows a page ahead of the reader
    expect(counters(await queued(store, 'c'))).toEqual(range(1, 12))
    expect(rowsOnDisk(path, 'queued_runs')).toBe(1) // d's
    expect(counters(await queued(store, 'd'))).toEqual(range(1, 5))
    expect([rowsOnDisk(path, 'queued_runs'), rowsOnDisk(path, 'outgoing')]).toEqual([0, 17])
  })

  test("a commit's copies for a session are one run however many messages it holds", async () => {
    const path = fixtures.dbPath()
    const { store } = await open({ path })
    // more than the 64 bodies after which the batch's deferred rows go in before the commit
    await enqueueTogether(store, ['c'], 1, 150)
    expect([rowsOnDisk(path, 'queued_runs'), rowsOnDisk(path, 'bodies')]).toEqual([1, 150])
    expect(counters(await queued(store, 'c'))).toEqual(range(1, 150))
  })

  test('a delivery update and acknowledgement find a copy still in a run', async () => {
    const path = fixtures.dbPath()
    const { store } = await open({ path })
    await enqueueTogether(store, ['c'], 1, 4)
    expect(rowsOnDisk(path, 'queued_runs')).toBe(1)
    await store.outgoingUpdate({ id: 'c' }, { ...message(2), messageId: 12 })
    expect((await queued(store, 'c')).map((p) => [p.brokerCounter, p.messageId])).toEqual([[1, undefined], [2, 12], [3, undefined], [4, undefined]])
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 12 })).toMatchObject({ brokerCounter: 2 })
    await enqueueTogether(store, ['c'], 5, 8)
    // without a packet id: by broker counter (No Local), then the oldest queued
    expect(await store.outgoingClearMessageId({ id: 'c' }, message(8))).toMatchObject({ brokerCounter: 8 })
    expect(await store.outgoingClearMessageId({ id: 'c' }, undefined)).toMatchObject({ brokerCounter: 1 })
    expect(counters(await queued(store, 'c'))).toEqual([3, 4, 5, 6, 7])
    expect(store.stats()).toMatchObject({ queued: 5, inflight: 0 })
  })

  test('drop-oldest drops the oldest copy, in a row or in a run', async () => {
    const { store, drops } = await open({ maxQueuedMessages: 5, queuePolicy: 'drop-oldest', ackWindowMs: 0 })
    await store.sessionConnected('c', { expiryIntervalSeconds: 60, protocolVersion: 5 })
    await enqueueTogether(store, ['c'], 1, 1) // a row
    await store.sessionDisconnected('c')
    await enqueueTogether(store, ['c'], 2, 5) // a run
    await enqueueTogether(store, ['c'], 6, 6) // drops 1, the row
    await enqueueTogether(store, ['c'], 7, 7) // drops 2, from the run
    expect(drops).toEqual([['queue_full', 1, 'c'], ['queue_full', 1, 'c']])
    expect(counters(await queued(store, 'c'))).toEqual(range(3, 7))
  })

  test('deleting a session releases the bodies its runs referenced', async () => {
    const path = fixtures.dbPath()
    const { store } = await open({ path })
    await enqueueTogether(store, ['a', 'b'], 1, 4)
    expect(rowsOnDisk(path, 'queued_runs')).toBe(2)
    await store.deleteSession('a')
    expect([queuedCopiesOnDisk(path), rowsOnDisk(path, 'bodies')]).toEqual([4, 4])
    await store.deleteSession('b')
    expect([rowsOnDisk(path, 'queued_runs'), rowsOnDisk(path, 'outgoing'), rowsOnDisk(path, 'bodies')]).toEqual([0, 0, 0])
  })

  test('runs survive a reopen: counted in the queue sizes, and newer copies sort after them', async () => {
    const path = fixtures.dbPath()
    const first = await open({ path })
    await enqueueTogether(first.store, ['c'], 1, 4)
    await first.store.close()
    expect(rowsOnDisk(path, 'queued_runs')).toBe(1)
    const { store } = await open({ path })
    expect(store.stats()).toMatchObject({ queued: 4, inflight: 0 })
    await enqueueTogether(store, ['c'], 5, 5)
    expect(counters(await queued(store, 'c'))).toEqual(range(1, 5))
  })

  test('a run whose copies do not match its row is reported, not half-delivered', async () => {
    const path = fixtures.dbPath()
    const { store } = await open({ path })
    await enqueueTogether(store, ['c'], 1, 4)
    const admin = new Database(path)
    admin.prepare('UPDATE queued_runs SET copies = 5').run()
    admin.close()
    await expect(queued(store, 'c')).rejects.toThrow(/lists 4 copies, its row says 5/)
    expect(rowsOnDisk(path, 'outgoing')).toBe(0)
  })

  test('a failed commit takes its runs back and the queue goes on', async () => {
    const path = fixtures.dbPath()
    const { store } = await open({ path })
    await enqueueTogether(store, ['c'], 1, 1)
    poisonRetainedTopic(path)
    const poison = { cmd: 'publish', topic: 'poison', payload: Buffer.from('x'), qos: 0, retain: true }
    const [lost, failed] = await Promise.allSettled([enqueueTogether(store, ['c'], 2, 5), store.storeRetained(poison)])
    expect([lost.status, failed.status]).toEqual(['rejected', 'rejected'])
    expect([store.stats().queued, rowsOnDisk(path, 'queued_runs')]).toEqual([1, 0])
    await enqueueTogether(store, ['c'], 6, 9)
    expect(counters(await queued(store, 'c'))).toEqual([1, 6, 7, 8, 9])
  })
})
