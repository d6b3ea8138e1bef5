import { describe, expect, test } from 'vitest'
import { MemoryPersistence } from '../../src/persistence/memory-persistence.js'

// The memory store's indexed outgoing queue: the cases the aedes-persistence suite does not cover.

interface Queued {
  cmd: string
  brokerId?: string
  brokerCounter?: number
  messageId?: number
  payload?: Buffer
}

const client = { id: 'c' }
const sub = { clientId: 'c' }

function message(n: number): Queued & { topic: string; qos: number; payload: Buffer } {
  return { cmd: 'publish', topic: 't', payload: Buffer.from(`m${n}`), qos: 1, brokerId: 'b', brokerCounter: n }
}

async function queued(store: MemoryPersistence): Promise<Queued[]> {
  return (await store.outgoingStream(client).toArray()) as Queued[]
}

/** What each queued entry is: `m<n>` or `m<n>#<id>` for a message, `pubrel#<id>` for a PUBREL. */
async function shape(store: MemoryPersistence): Promise<string[]> {
  return (await queued(store)).map((p) => {
    const name = p.cmd === 'publish' ? String(p.payload) : p.cmd
    return p.messageId === undefined ? name : `${name}#${p.messageId}`
  })
}

async function storeWith(...counters: number[]): Promise<MemoryPersistence> {
  const store = new MemoryPersistence()
  for (const n of counters) await store.outgoingEnqueue(sub, message(n))
  return store
}

describe('MemoryPersistence outgoing queue', () => {
  test('a client listed twice gets two copies; the first copy takes the packet id', async () => {
    const store = new MemoryPersistence()
    await store.outgoingEnqueueCombi([sub, sub], message(1))
    await store.outgoingUpdate(client, { ...message(1), messageId: 7 })
    expect(await shape(store)).toEqual(['m1#7', 'm1'])
    // without an id, the copy still queued goes, not the one in flight
    expect(await store.outgoingClearMessageId(client, message(1))).toMatchObject({ brokerCounter: 1, messageId: undefined })
    expect(await shape(store)).toEqual(['m1#7'])
    expect(await store.outgoingClearMessageId(client, { messageId: 7 })).toMatchObject({ brokerCounter: 1, messageId: 7 })
    expect(await queued(store)).toEqual([])
  })

  test('a PUBREL replaces the message with its packet id in its place in the queue', async () => {
    const store = await storeWith(1, 2, 3)
    await store.outgoingUpdate(client, { ...message(2), messageId: 2 })
    const pubrel = { cmd: 'pubrel', messageId: 2 }
    await store.outgoingUpdate(client, pubrel)
    expect(await shape(store)).toEqual(['m1', 'pubrel#2', 'm3'])
    expect(await store.outgoingClearMessageId(client, { messageId: 2 })).toBe(pubrel)
    expect(await shape(store)).toEqual(['m1', 'm3'])
  })

  test('a second PUBREL leaves the first one alone', async () => {
    const store = await storeWith(1, 2)
    await store.outgoingUpdate(client, { ...message(1), messageId: 1 })
    await store.outgoingUpdate(client, { ...message(2), messageId: 2 })
    await store.outgoingUpdate(client, { cmd: 'pubrel', messageId: 1 })
    await store.outgoingUpdate(client, { cmd: 'pubrel', messageId: 2 })
    expect(await shape(store)).toEqual(['pubrel#1', 'pubrel#2'])
  })

  test('a redelivered PUBREL (with a broker counter of its own) replaces the stored one', async () => {
    const store = await storeWith(1)
    await store.outgoingUpdate(client, { ...message(1), messageId: 1 })
    await store.outgoingUpdate(client, { cmd: 'pubrel', messageId: 1 })
    await store.outgoingUpdate(client, { cmd: 'pubrel', brokerId: 'b', brokerCounter: 99, messageId: 1 })
    expect(await queued(store)).toEqual([{ cmd: 'pubrel', brokerId: 'b', brokerCounter: 99, messageId: 1 }])
    // indexed by its new counter: an update by that counter finds it
    await store.outgoingUpdate(client, { cmd: 'pubrel', brokerId: 'b', brokerCounter: 99, messageId: 1 })
    expect(await store.outgoingClearMessageId(client, { messageId: 1 })).toMatchObject({ brokerCounter: 99 })
  })

  test('a message of the same broker with another counter is never replaced', async () => {
    const store = await storeWith(1)
    await store.outgoingUpdate(client, { ...message(1), messageId: 5 })
    await expect(store.outgoingUpdate(client, { ...message(2), messageId: 5 })).rejects.toThrow('no such packet')
    await expect(store.outgoingUpdate({ id: 'other' }, { ...message(1), messageId: 5 })).rejects.toThrow('no such packet')
    expect(await shape(store)).toEqual(['m1#5'])
  })

  test('without a packet id or a counter, the oldest queued message goes, not one in flight', async () => {
    const store = await storeWith(1, 2, 3)
    await store.outgoingUpdate(client, { ...message(1), messageId: 1 })
    expect(await store.outgoingClearMessageId(client, {})).toMatchObject({ brokerCounter: 2 })
    expect(await store.outgoingClearMessageId(client, 42)).toMatchObject({ brokerCounter: 3 })
    expect(await store.outgoingClearMessageId(client, undefined)).toBeUndefined()
    expect(await shape(store)).toEqual(['m1#1'])
  })

  test('without a packet id, a counter with no queued copy clears nothing', async () => {
    const store = await storeWith(1, 2)
    await store.outgoingUpdate(client, { ...message(1), messageId: 1 })
    expect(await store.outgoingClearMessageId(client, message(1))).toBeUndefined()
    expect(await store.outgoingClearMessageId(client, message(9))).toBeUndefined()
    expect(await shape(store)).toEqual(['m1#1', 'm2'])
  })

  test('a packet id given again replaces the old one in the index', async () => {
    const store = await storeWith(1)
    await store.outgoingUpdate(client, { ...message(1), messageId: 5 })
    await store.outgoingUpdate(client, { ...message(1), messageId: 6 })
    expect(await store.outgoingClearMessageId(client, { messageId: 5 })).toBeUndefined()
    expect(await store.outgoingClearMessageId(client, { messageId: 6 })).toMatchObject({ brokerCounter: 1 })
  })

  test('a reused packet id is cleared from the oldest holder first', async () => {
    const store = await storeWith(1, 2)
    await store.outgoingUpdate(client, { ...message(2), messageId: 5 })
    await store.outgoingUpdate(client, { ...message(1), messageId: 5 })
    expect(await store.outgoingClearMessageId(client, { messageId: 5 })).toMatchObject({ brokerCounter: 1 })
    expect(await store.outgoingClearMessageId(client, { messageId: 5 })).toMatchObject({ brokerCounter: 2 })
  })

  test('keeps the queue order through deletes in the middle and new messages', async () => {
    const store = await storeWith(1, 2, 3, 4, 5)
    for (const n of [1, 2, 3, 4, 5]) await store.outgoingUpdate(client, { ...message(n), messageId: n })
    await store.outgoingClearMessageId(client, { messageId: 2 })
    await store.outgoingClearMessageId(client, { messageId: 4 })
    await store.outgoingEnqueue(sub, message(6))
    await store.outgoingUpdate(client, { cmd: 'pubrel', messageId: 3 })
    expect(await shape(store)).toEqual(['m1#1', 'pubrel#3', 'm5#5', 'm6'])
  })

  test('a stream keeps the queue as it was when opened', async () => {
    const store = await storeWith(1, 2)
    const stream = store.outgoingStream(client)
    await store.outgoingClearMessageId(client, message(1))
    await store.outgoingEnqueue(sub, message(3))
    expect(((await stream.toArray()) as Queued[]).map((p) => p.brokerCounter)).toEqual([1, 2])
  })

  test('an emptied queue starts again in order', async () => {
    const store = await storeWith(1)
    await store.outgoingClearMessageId(client, message(1))
    expect(await queued(store)).toEqual([])
    await store.outgoingEnqueue(sub, message(2))
    await store.outgoingEnqueue(sub, message(3))
    expect(await shape(store)).toEqual(['m2', 'm3'])
  })

  test('a long queue emptied from its head keeps order, ids and counters right', async () => {
    const store = new MemoryPersistence()
    for (let n = 1; n <= 3000; n++) await store.outgoingEnqueue(sub, message(n))
    // in flight and acknowledged from the front, with one straggler left behind at 10
    for (let n = 1; n <= 2500; n++) await store.outgoingUpdate(client, { ...message(n), messageId: n })
    for (let n = 1; n <= 2500; n++) if (n !== 10) await store.outgoingClearMessageId(client, { messageId: n })
    await store.outgoingEnqueue(sub, message(3001))
    await store.outgoingUpdate(client, { ...message(2600), messageId: 7 })
    await store.outgoingUpdate(client, { cmd: 'pubrel', messageId: 10 })
    const left = await shape(store)
    expect(left).toHaveLength(502)
    expect(left.slice(0, 3)).toEqual(['pubrel#10', 'm2501', 'm2502'])
    expect(left[100]).toBe('m2600#7')
    expect(left.at(-1)).toBe('m3001')
    expect(await store.outgoingClearMessageId(client, { messageId: 7 })).toMatchObject({ brokerCounter: 2600 })
    expect(await store.outgoingClearMessageId(client, message(2501))).toMatchObject({ brokerCounter: 2501 })
    expect(await store.outgoingClearMessageId(client, {})).toMatchObject({ brokerCounter: 2502 }) // the oldest queued
    expect(await shape(store)).toHaveLength(499)
  })

  test('an old unacknowledged message stays first while everything after it comes and goes', async () => {
    const store = await storeWith(1)
    await store.outgoingUpdate(client, { ...message(1), messageId: 1 }) // never acknowledged
    for (let round = 0; round < 3; round++) {
      for (let n = 2; n <= 1500; n++) await store.outgoingEnqueue(sub, message(round * 10_000 + n))
      for (let n = 2; n <= 1500; n++) await store.outgoingClearMessageId(client, message(round * 10_000 + n))
    }
    await store.outgoingEnqueue(sub, message(99_999))
    expect(await shape(store)).toEqual(['m1#1', 'm99999'])
    expect(await store.outgoingClearMessageId(client, { messageId: 1 })).toMatchObject({ brokerCounter: 1 })
    expect(await shape(store)).toEqual(['m99999'])
  })

  test('one message queued for several sessions: each copy takes its own packet id', async () => {
    const store = new MemoryPersistence()
    await store.outgoingEnqueueCombi([{ clientId: 'c' }, { clientId: 'd' }, { clientId: 'e' }], message(1))
    await store.outgoingUpdate(client, { ...message(1), messageId: 4 })
    await store.outgoingUpdate({ id: 'd' }, { ...message(1), messageId: 9 })
    expect(await shape(store)).toEqual(['m1#4'])
    expect(((await store.outgoingStream({ id: 'd' }).toArray()) as Queued[]).map((p) => p.messageId)).toEqual([9])
    expect(((await store.outgoingStream({ id: 'e' }).toArray()) as Queued[]).map((p) => p.messageId)).toEqual([undefined])
    expect(await store.outgoingClearMessageId(client, { messageId: 4 })).toMatchObject({ brokerCounter: 1, messageId: 4 })
    expect(((await store.outgoingStream({ id: 'd' }).toArray()) as Queued[]).map((p) => p.messageId)).toEqual([9])
    expect(await store.outgoingClearMessageId({ id: 'e' }, message(1))).toMatchObject({ brokerCounter: 1, messageId: undefined })
    expect(await store.outgoingClearMessageId({ id: 'd' }, { messageId: 9 })).toMatchObject({ brokerCounter: 1, messageId: 9 })
  })

  test('queues are per client', async () => {
    const store = await storeWith(1)
    await store.outgoingEnqueueCombi([{ clientId: 'd' }], message(1))
    await store.outgoingUpdate({ id: 'd' }, { ...message(1), messageId: 1 })
    expect(await shape(store)).toEqual(['m1'])
    expect(await store.outgoingClearMessageId({ id: 'd' }, { messageId: 1 })).toMatchObject({ brokerCounter: 1 })
    expect(await shape(store)).toEqual(['m1'])
  })
})
