import { afterEach, describe, expect, test } from 'vitest'
import { KNOWN_COPY_MAX_BYTES, RowHints, ROW_HINTS_KEPT } from '../../src/persistence/row-hints.js'
import type { SqlitePersistenceOptions } from '../../src/persistence/options.js'
import { SqlitePersistence, type PacketLike } from '../../src/persistence/sqlite-persistence.js'

describe('RowHints', () => {
  test('answers once, and not at all for a counter queued twice', () => {
    const hints = new RowHints()
    hints.queued(1, 10)
    hints.queued(2, 20)
    hints.queued(2, 21)
    expect(hints.takeQueued(1)).toBe(10)
    expect(hints.takeQueued(1)).toBeUndefined()
    expect(hints.takeQueued(2)).toBeUndefined()
    hints.streamed(5, 'b1', 9, 5120)
    hints.streamed(6, 'b1', 9, 6144) // same message, other session
    hints.streamed(5, 'b2', 9, 7168) // same counter, other broker
    hints.streamed(5, 'b1', 10, 8192)
    hints.streamed(5, 'b1', 10, 8193) // a second copy of one message in one session: no guess
    hints.streamed(5, 'b1', 11, 9216)
    hints.streamed(5, 'b1', 11, 9216) // the same row streamed again (the client came back)
    expect(hints.takeStreamed(5, 'b1', 9)).toBe(5120)
    expect(hints.takeStreamed(5, 'b1', 9)).toBeUndefined()
    expect(hints.takeStreamed(6, 'b1', 9)).toBe(6144)
    expect(hints.takeStreamed(5, 'b2', 9)).toBe(7168)
    expect(hints.takeStreamed(5, 'b1', 10)).toBeUndefined()
    expect(hints.takeStreamed(5, 'b1', 11)).toBe(9216)
    hints.inFlight(3, 7, 3072)
    hints.inFlight(4, 7, 4096) // same packet id, other session
    expect(hints.takeInFlight(3, 7)).toBe(3072)
    expect(hints.takeInFlight(3, 7)).toBeUndefined()
    expect(hints.takeInFlight(4, 7)).toBe(4096)
  })

  test('keeps the latest ROW_HINTS_KEPT at least, and forgets older ones', () => {
    const hints = new RowHints()
    for (let i = 0; i < 3 * ROW_HINTS_KEPT; i++) hints.queued(i, i)
    expect(hints.takeQueued(0)).toBeUndefined()
    expect(hints.takeQueued(ROW_HINTS_KEPT - 1)).toBeUndefined()
    expect(hints.takeQueued(2 * ROW_HINTS_KEPT - 1)).toBe(2 * ROW_HINTS_KEPT - 1) // older generation
    expect(hints.takeQueued(3 * ROW_HINTS_KEPT - 1)).toBe(3 * ROW_HINTS_KEPT - 1)
    expect(hints.takeQueued(3 * ROW_HINTS_KEPT - 1)).toBeUndefined()
    // a counter queued twice across the generations is still ambiguous
    hints.queued(2 * ROW_HINTS_KEPT, 1)
    expect(hints.takeQueued(2 * ROW_HINTS_KEPT)).toBeUndefined()
  })
})

describe('RowHints known copies', () => {
  test('keeps a small stored packet until asked or forgotten, never a large one', () => {
    const hints = new RowHints()
    hints.copy(1024, 2, Buffer.alloc(10))
    hints.copy(2048, 2, Buffer.alloc(KNOWN_COPY_MAX_BYTES + 1))
    hints.copy(3072, 2, Buffer.alloc(10))
    hints.forgetCopy(3072)
    expect(hints.takeCopy(1024)).toMatchObject({ bytes: 2 })
    expect(hints.takeCopy(1024)).toBeUndefined()
    expect(hints.takeCopy(2048)).toBeUndefined()
    expect(hints.takeCopy(3072)).toBeUndefined()
  })
})

// The store's answers must not depend on whether a hint was there, stale, or missing.
describe('SQLite store with hints', () => {
  const stores: SqlitePersistence[] = []
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()))
  })
  // ackWindowMs 0: these rows are written at once (held ones: persistence-held.test.ts)
  async function open(options: Partial<SqlitePersistenceOptions> = {}): Promise<SqlitePersistence> {
    const store = new SqlitePersistence({ path: ':memory:', ackWindowMs: 0, ...options })
    stores.push(store)
    await store.setup({ id: 'b', counter: 0 })
    // hints are kept for connected sessions only
    for (const id of ['c', 'd']) await store.sessionConnected(id, { expiryIntervalSeconds: 3600, protocolVersion: 5 })
    return store
  }
  const message = (n: number, extra: Partial<PacketLike> = {}): PacketLike => ({ cmd: 'publish', topic: 't', payload: Buffer.from(`m${n}`), qos: 1, retain: false, dup: false, brokerId: 'b', brokerCounter: n, ...extra })
  const queued = async (store: SqlitePersistence, id: string) => (await store.outgoingStream({ id }).toArray()) as PacketLike[]

  test('a counter queued twice for one session: the update takes the first copy, as the search does', async () => {
    const store = await open()
    await store.outgoingEnqueue({ clientId: 'c' }, message(1))
    await store.outgoingEnqueue({ clientId: 'c' }, message(1))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    expect((await queued(store, 'c')).map((p) => p.messageId)).toEqual([5, undefined])
  })

  test('an update for another session than the hinted one finds its own row', async () => {
    const store = await open()
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'd' }], message(2))
    await store.outgoingUpdate({ id: 'd' }, { ...message(1), messageId: 9 }) // d has no m1
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    expect((await queued(store, 'c')).map((p) => p.messageId)).toEqual([5])
    expect((await queued(store, 'd')).map((p) => p.messageId)).toEqual([undefined])
  })

  test('a hinted row dropped from a full queue: the update finds nothing, the ack nothing', async () => {
    const store = await open({ maxQueuedMessages: 1, queuePolicy: 'drop-oldest' })
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2)) // drops m1
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 5 })).toBeUndefined()
    expect((await queued(store, 'c')).map((p) => [String(p.payload), p.messageId])).toEqual([['m2', undefined]])
  })

  test('the ack of a QoS 2 copy replaced by its PUBREL returns the PUBREL and empties the queue', async () => {
    const store = await open()
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1, { qos: 2 }))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1, { qos: 2 }), messageId: 3 })
    await store.outgoingUpdate({ id: 'c' }, { cmd: 'pubrel', messageId: 3 })
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 3 })).toMatchObject({ cmd: 'pubrel', messageId: 3 })
    expect(await queued(store, 'c')).toEqual([])
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 0 })
  })

  test('a copy sent again under a new packet id: an ack of the old id takes nothing', async () => {
    const store = await open()
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 4 })
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 6 }) // resent after a reconnect
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 4 })).toBeUndefined()
    expect((await queued(store, 'c')).map((p) => p.messageId)).toEqual([6])
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 6 })).toMatchObject({ brokerCounter: 1 })
  })

  test('an acknowledged copy comes back as stored whether the store knew it (small) or read it (large)', async () => {
    const store = await open()
    const large = Buffer.alloc(KNOWN_COPY_MAX_BYTES + 1, 0x61)
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2, { payload: large }))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 4 })
    await store.outgoingUpdate({ id: 'c' }, { ...message(2, { payload: large }), messageId: 5 })
    const [first, second] = await queued(store, 'c')
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 4 })).toEqual(first)
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 1 })
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 5 })).toEqual(second)
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 0 })
  })

  test('a returning session drains its queue through the stream hints: right rows, right answers', async () => {
    const store = await open()
    // 'e' is offline: its copies leave no queue hints, only the stream's
    await store.outgoingEnqueueCombi([{ clientId: 'e' }, { clientId: 'c' }], message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'e' }], message(2, { qos: 2 }))
    await store.outgoingEnqueueCombi([{ clientId: 'e' }], message(3))
    const streamed = await queued(store, 'e')
    for (const [i, packet] of streamed.entries()) await store.outgoingUpdate({ id: 'e' }, { ...packet, messageId: 10 + i })
    const inFlight = await queued(store, 'e')
    expect(inFlight.map((p) => [p.brokerCounter, p.messageId])).toEqual([[1, 10], [2, 11], [3, 12]])
    for (const [i, packet] of inFlight.entries()) expect(await store.outgoingClearMessageId({ id: 'e' }, { messageId: 10 + i })).toEqual(packet)
    expect(await queued(store, 'e')).toEqual([])
    expect((await queued(store, 'c')).map((p) => p.brokerCounter)).toEqual([1])
    expect(store.stats()).toMatchObject({ queued: 1, inflight: 0 })
  })

  test('a message queued for several sessions: each connected one updates and clears its own copy', async () => {
    const store = await open()
    await store.outgoingEnqueueCombi([{ clientId: 'c' }, { clientId: 'e' }, { clientId: 'd' }], message(1))
    await store.outgoingUpdate({ id: 'd' }, { ...message(1), messageId: 7 })
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 5 })
    expect((await queued(store, 'c')).map((p) => p.messageId)).toEqual([5])
    expect((await queued(store, 'd')).map((p) => p.messageId)).toEqual([7])
    // the first ack takes the known copy, the second reads its row: both answers are the message
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 5 })).toMatchObject({ brokerCounter: 1, messageId: 5, payload: Buffer.from('m1') })
    expect(await store.outgoingClearMessageId({ id: 'd' }, { messageId: 7 })).toMatchObject({ brokerCounter: 1, messageId: 7, payload: Buffer.from('m1') })
    expect(await queued(store, 'c')).toEqual([])
    // the offline session keeps its copy, never given a packet id
    expect((await queued(store, 'e')).map((p) => [p.brokerCounter, p.messageId])).toEqual([[1, undefined]])
    expect(store.stats()).toMatchObject({ queued: 1, inflight: 0 })
  })

  test('a packet id in flight again after its ack: the new copy is cleared, not a stale hint', async () => {
    const store = await open()
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1))
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(2))
    await store.outgoingUpdate({ id: 'c' }, { ...message(1), messageId: 4 })
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 4 })).toMatchObject({ brokerCounter: 1 })
    await store.outgoingUpdate({ id: 'c' }, { ...message(2), messageId: 4 })
    expect(await store.outgoingClearMessageId({ id: 'c' }, { messageId: 4 })).toMatchObject({ brokerCounter: 2 })
    expect(await queued(store, 'c')).toEqual([])
  })
})
