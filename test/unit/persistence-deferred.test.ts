import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import type { SqlitePersistenceOptions } from '../../src/persistence/options.js'
import { SqlitePersistence, type PacketLike } from '../../src/persistence/sqlite-persistence.js'
import { migrate } from '../../src/persistence/schema.js'
import { outgoingInsertRows, runInserts } from '../../src/persistence/statements.js'

// Single-copy enqueues are inserted many rows at a time, before anything else in their batch
// reads or writes and before its COMMIT. These tests make several calls inside one batch (no
// await between them), where a missing flush would show.

const stores: SqlitePersistence[] = []
const dirs: string[] = []
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()))
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

async function open(options: Partial<SqlitePersistenceOptions> = {}): Promise<SqlitePersistence> {
  const store = new SqlitePersistence({ path: ':memory:', ...options })
  stores.push(store)
  await store.setup({ id: 'b', counter: 0 })
  return store
}

function message(n: number, extra: Partial<PacketLike> = {}): PacketLike {
  return { cmd: 'publish', topic: 't', payload: Buffer.from(`m${n}`), qos: 1, retain: false, dup: false, brokerId: 'b', brokerCounter: n, ...extra }
}

async function queued(store: SqlitePersistence, clientId: string): Promise<PacketLike[]> {
  return (await store.outgoingStream({ id: clientId }).toArray()) as PacketLike[]
}

const payloads = (list: PacketLike[]) => list.map((p) => String(p.payload))
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe('deferred enqueue inserts', () => {
  test('a packet id given, and a copy cleared, in the batch that queued them', async () => {
    const store = await open()
    await Promise.all([
      ...range(1, 3).map((n) => store.outgoingEnqueueCombi([{ clientId: 'c' }], message(n))),
      store.outgoingUpdate({ id: 'c' }, { ...message(2), messageId: 7 }),
      store.outgoingClearMessageId({ id: 'c' }, message(1)),
    ])
    const list = await queued(store, 'c')
    expect(payloads(list)).toEqual(['m2', 'm3'])
    expect(list.map((p) => p.messageId)).toEqual([7, undefined])
    expect(store.stats()).toMatchObject({ queued: 1, inflight: 1 })
  })

  test('drop-oldest drops the oldest even when all of them are still deferred', async () => {
    const store = await open({ maxQueuedMessages: 2, queuePolicy: 'drop-oldest' })
    await Promise.all(range(1, 5).map((n) => store.outgoingEnqueueCombi([{ clientId: 'c' }], message(n))))
    expect(payloads(await queued(store, 'c'))).toEqual(['m4', 'm5'])
  })

  test('more than one statement of rows in a batch, in order, with other sessions in between', async () => {
    const store = await open()
    await Promise.all(
      range(1, 150).map((n) => store.outgoingEnqueueCombi(n % 10 === 0 ? [{ clientId: 'c' }, { clientId: 'd' }] : [{ clientId: 'c' }], message(n))),
    )
    expect(payloads(await queued(store, 'c'))).toEqual(range(1, 150).map((n) => `m${n}`))
    expect(payloads(await queued(store, 'd'))).toEqual(range(1, 15).map((n) => `m${n * 10}`))
    expect(store.stats().queued).toBe(165)
  })

  test('a session listed more than 1,024 times for one message gets every copy, in order', async () => {
    const store = await open()
    const subs = Array.from({ length: 1030 }, () => ({ clientId: 'c' }))
    await Promise.all([store.outgoingEnqueueCombi([{ clientId: 'c' }], message(1)), store.outgoingEnqueueCombi(subs, message(2)), store.outgoingEnqueueCombi([{ clientId: 'c' }], message(3))])
    const list = payloads(await queued(store, 'c'))
    expect(list).toEqual(['m1', ...Array(1030).fill('m2'), 'm3'])
    expect(store.stats().queued).toBe(1032)
    // each copy is a row of its own: clearing them one by one empties the queue
    for (let i = 0; i < 1032; i++) await store.outgoingClearMessageId({ id: 'c' }, undefined)
    expect(await queued(store, 'c')).toEqual([])
  })

  test('a deferred insert that fails rejects its whole batch and keeps nothing of it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mqlite-deferred-'))
    dirs.push(dir)
    const path = join(dir, 'store.db')
    await (await open({ path })).close()
    // the database refuses the body of message 13, as a full disk would refuse a page
    const raw = new Database(path)
    raw.exec("CREATE TRIGGER refuse_13 BEFORE INSERT ON bodies WHEN NEW.broker_counter = 13 BEGIN SELECT RAISE(ABORT, 'refused'); END")
    raw.close()
    const store = await open({ path })
    for (const n of range(1, 12)) await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(n))
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(5)) // a second copy of m5, committed
    const batch = [
      ...range(13, 16).map((n) => store.outgoingEnqueueCombi(n === 14 ? [{ clientId: 'c' }, { clientId: 'd' }] : [{ clientId: 'c' }], message(n))),
      // a write of the same batch: it inserts the deferred rows first, and fails with them
      store.outgoingUpdate({ id: 'c' }, { ...message(5), messageId: 5 }),
    ]
    const results = await Promise.allSettled(batch)
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected', 'rejected'])
    const list = await queued(store, 'c')
    expect(payloads(list)).toEqual([...range(1, 12).map((n) => `m${n}`), 'm5'])
    expect(list.every((p) => p.messageId === undefined)).toBe(true)
    expect(await queued(store, 'd')).toEqual([])
    expect(store.stats()).toMatchObject({ queued: 13, inflight: 0 })
    // the store goes on: the next batch commits
    await store.outgoingEnqueueCombi([{ clientId: 'c' }], message(17))
    expect(payloads(await queued(store, 'c')).at(-1)).toBe('m17')
  })

  // The multi-row inserts are OR IGNORE (no statement journal); a row left out is still an error.
  test('a deferred row that collides with a stored one is an error, not a silent skip', () => {
    const db = new Database(':memory:')
    migrate(db, ':memory:')
    const insert = outgoingInsertRows(db)
    runInserts(insert(2), [1, 1024, 1, 2048], 2)
    expect(() => runInserts(insert(2), [1, 3072, 1, 2048], 2)).toThrow('1 of 2 rows collided')
    db.close()
  })
})
