import { readFileSync } from 'node:fs'
import Database from 'better-sqlite3'
import { describe, expect, test } from 'vitest'
import { storeFixtures } from '../helpers/store-fixtures.js'
import { LATEST_SCHEMA_VERSION, readSchemaVersion } from '../../src/persistence/schema.js'
import { SqlitePersistence, type BrokerRef, type PacketLike } from '../../src/persistence/sqlite-persistence.js'

// A database written by the first release (schema version 1), kept as an SQL dump: the current
// store must open it, migrate it and keep every queued, in-flight and other record.
const V1_DUMP = readFileSync(new URL('../fixtures/store-v1.sql', import.meta.url), 'utf8')

const { dbPath, track } = storeFixtures()

function v1Database(): string {
  const path = dbPath('v1.db')
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec(V1_DUMP)
  expect(readSchemaVersion(db)).toBe(1)
  db.close()
  return path
}

async function open(path: string, broker: BrokerRef = { id: 'broker-1', counter: 0 }): Promise<SqlitePersistence> {
  const store = track(new SqlitePersistence({ path }))
  await store.setup(broker)
  return store
}

const publish = (n: number): PacketLike => ({
  cmd: 'publish', topic: `q/${n}`, payload: Buffer.from(`m${n}`), qos: 1, retain: false, dup: false, brokerId: 'broker-1', brokerCounter: n,
})

const summary = (list: PacketLike[]) => list.map((p) => [p.cmd, p.brokerCounter, p.messageId])

describe('schema version 1 -> current', () => {
  test('a version 1 database opens, is migrated and keeps every record', async () => {
    const path = v1Database()
    const broker = { id: 'broker-1', counter: 0 }
    const store = await open(path, broker)
    // the packet counter resumes above the stored messages
    expect(broker.counter).toBe(8)

    // sub: #1 in flight, #2 at PUBREL, #3..#5 queued, two copies of #6, #7 expired, #8 expires in 2100
    const sub = (await store.outgoingStream({ id: 'sub' }).toArray()) as PacketLike[]
    expect(summary(sub)).toEqual([
      ['publish', 1, 11],
      ['pubrel', undefined, 12],
      ['publish', 3, undefined],
      ['publish', 4, undefined],
      ['publish', 5, undefined],
      ['publish', 6, undefined],
      ['publish', 6, undefined],
      ['publish', 8, undefined],
    ])
    expect(sub[0]).toMatchObject({ topic: 'q/1', payload: Buffer.from('m1'), qos: 1 })
    expect(sub[7]?.properties).toMatchObject({ contentType: 'text/plain' })
    // other acknowledged #3 before the upgrade
    expect(summary((await store.outgoingStream({ id: 'other' }).toArray()) as PacketLike[])).toEqual([
      ['publish', 1, 21],
      ['publish', 2, undefined],
      ['publish', 4, undefined],
      ['publish', 5, undefined],
    ])
    await store.flush() // the expired #7 was deleted while streaming
    expect(store.stats()).toMatchObject({ retained: 1, subscriptions: 3, queued: 9, inflight: 3, sessions: 2 })

    expect(await store.createRetainedStream('status/#').toArray()).toMatchObject([{ topic: 'status/1', payload: Buffer.from('on') }])
    expect(await store.subscriptionsByClient({ id: 'sub' })).toEqual([
      { topic: 'q/#', qos: 2, nl: true, rap: true, rh: 1, subscriptionIdentifier: 42 },
      { topic: 'zero', qos: 0 },
    ])
    expect(await store.incomingGetPacket({ id: 'pub' }, { messageId: 77 })).toMatchObject({ topic: 'in', payload: Buffer.from('q2') })
    expect(await store.getWill({ id: 'pub' })).toMatchObject({ topic: 'pub/gone', clientId: 'pub' })
    expect(store.expiredSessions(Number.MAX_SAFE_INTEGER)).toEqual(['sub'])
  })

  test('migrated rows are found by broker counter and by packet id, and new messages queue behind them', async () => {
    const path = v1Database()
    const store = await open(path)
    const sub = { id: 'sub' }
    // a queued migrated message gets its packet id on delivery, by brokerId + brokerCounter
    await store.outgoingUpdate(sub, { ...publish(3), messageId: 13 })
    // aedes drops the extra copy of #6 by counter, without a packet id
    expect(await store.outgoingClearMessageId(sub, { brokerId: 'broker-1', brokerCounter: 6 })).toMatchObject({ brokerCounter: 6 })
    await store.outgoingEnqueueCombi([{ clientId: 'sub' }, { clientId: 'other' }], publish(9))
    await store.outgoingEnqueueCombi([{ clientId: 'new' }], publish(10))
    expect(summary((await store.outgoingStream(sub).toArray()) as PacketLike[])).toEqual([
      ['publish', 1, 11],
      ['pubrel', undefined, 12],
      ['publish', 3, 13],
      ['publish', 4, undefined],
      ['publish', 5, undefined],
      ['publish', 6, undefined],
      ['publish', 8, undefined],
      ['publish', 9, undefined],
    ])
    // acknowledgements by packet id: PUBACK for #1 and #3, PUBCOMP for the PUBREL
    expect(await store.outgoingClearMessageId(sub, { messageId: 11 })).toMatchObject({ brokerCounter: 1, payload: Buffer.from('m1') })
    expect(await store.outgoingClearMessageId(sub, { messageId: 13 })).toMatchObject({ brokerCounter: 3 })
    expect(await store.outgoingClearMessageId(sub, { messageId: 12 })).toMatchObject({ cmd: 'pubrel', messageId: 12 })
    expect(summary((await store.outgoingStream({ id: 'other' }).toArray()) as PacketLike[]).at(-1)).toEqual(['publish', 9, undefined])
    expect(summary((await store.outgoingStream({ id: 'new' }).toArray()) as PacketLike[])).toEqual([['publish', 10, undefined]])

    // every body is shared by reference count: deleting the sessions leaves no packet behind
    for (const clientId of ['sub', 'other', 'new']) await store.deleteSession(clientId)
    expect(store.stats()).toMatchObject({ queued: 0, inflight: 0 })
    await store.close()
    const db = new Database(path)
    expect(readSchemaVersion(db)).toBe(LATEST_SCHEMA_VERSION)
    expect(db.prepare('SELECT COUNT(*) AS n FROM bodies').get()).toEqual({ n: 0 })
    expect(db.prepare('SELECT COUNT(*) AS n FROM outgoing').get()).toEqual({ n: 0 })
    db.close()
  })

  test('an unreferenced version 1 body does not stop the migration', async () => {
    const path = v1Database()
    const db = new Database(path)
    db.prepare("INSERT INTO bodies (broker_id, broker_counter, refs, packet) VALUES ('broker-1', 99, 0, X'00')").run()
    db.close()
    const store = await open(path)
    expect(store.stats()).toMatchObject({ queued: 10, inflight: 3 })
  })

  test('a migrated database survives a restart like a new one', async () => {
    const path = v1Database()
    const first = await open(path)
    await first.outgoingEnqueueCombi([{ clientId: 'sub' }], publish(9))
    await first.close()
    const second = await open(path)
    const list = (await second.outgoingStream({ id: 'sub' }).toArray()) as PacketLike[]
    expect(list.map((p) => p.brokerCounter)).toEqual([1, undefined, 3, 4, 5, 6, 6, 8, 9])
    expect(second.stats()).toMatchObject({ queued: 10, inflight: 3 })
  })
})
