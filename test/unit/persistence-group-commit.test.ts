import { describe, expect, test } from 'vitest'
import { StoreCommitError } from '../../src/persistence/errors.js'
import type { CommitInfo } from '../../src/persistence/group-commit.js'
import type { SqlitePersistenceOptions } from '../../src/persistence/options.js'
import { queuedCopiesOnDisk, rowsOnDisk, poisonRetainedTopic, storeFixtures } from '../helpers/store-fixtures.js'
import { SqlitePersistence } from '../../src/persistence/sqlite-persistence.js'

const { dbPath: fresh, track } = storeFixtures()
const dbPath = (): string => fresh('store.db')

async function open(options: SqlitePersistenceOptions): Promise<SqlitePersistence> {
  const store = new SqlitePersistence(options)
  track(store)
  await store.setup({ id: 'broker-1', counter: 0 })
  return store
}

function retained(topic: string) {
  return { cmd: 'publish', topic, payload: Buffer.from(topic), qos: 0, retain: true }
}

describe('group commit', () => {
  test('a write is invisible to other connections until its promise is about to resolve', async () => {
    const path = dbPath()
    const events: string[] = []
    const store = await open({ path, onCommit: (info) => events.push(`commit ${info.batchSize}`) })
    const writes = ['a', 'b', 'c'].map((t) => store.storeRetained(retained(t)).then(() => events.push(`resolved ${t}`)))
    // applied in the open transaction, not committed: another connection sees nothing yet
    expect(rowsOnDisk(path, 'retained')).toBe(0)
    expect(events).toEqual([])
    await Promise.all(writes)
    expect(events).toEqual(['commit 3', 'resolved a', 'resolved b', 'resolved c'])
    expect(rowsOnDisk(path, 'retained')).toBe(3)
  })

  test('writes of one event-loop turn share one commit; maxBatch splits a large turn', async () => {
    const commits: CommitInfo[] = []
    const store = await open({ path: ':memory:', maxBatch: 4, onCommit: (info) => commits.push(info) })
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.storeRetained(retained(`t/${i}`))))
    expect(commits.map((c) => c.batchSize)).toEqual([4, 4, 2])
    for (const c of commits) expect(c.durationSeconds).toBeGreaterThanOrEqual(0)
    await store.storeRetained(retained('later'))
    expect(commits.map((c) => c.batchSize)).toEqual([4, 4, 2, 1])
  })

  test("an enqueue for the patched aedes (a listener, no promise) counts in its batch and hears the commit", async () => {
    const path = dbPath()
    const events: string[] = []
    const store = await open({ path, maxBatch: 3, onCommit: (info) => events.push(`commit ${info.batchSize}`) })
    for (let i = 1; i <= 4; i++) {
      const packet = { cmd: 'publish', topic: 'q', payload: Buffer.from(`m${i}`), qos: 1, brokerId: 'broker-1', brokerCounter: i }
      store.outgoingEnqueueCombiNotify([{ clientId: 'offline' }], packet, { stored: (err) => events.push(err ? `failed m${i}` : `stored m${i}`) })
    }
    // maxBatch: the third write committed at once, its listeners told then
    expect(events).toEqual(['stored m1', 'stored m2', 'stored m3', 'commit 3'])
    expect(queuedCopiesOnDisk(path)).toBe(3)
    await store.flush()
    expect(events.slice(4)).toEqual(['stored m4', 'commit 1'])
    expect(queuedCopiesOnDisk(path)).toBe(4)
  })

  test('commitIntervalMs holds a batch open across event-loop turns', async () => {
    const commits: number[] = []
    const store = await open({ path: ':memory:', commitIntervalMs: 30, onCommit: (i) => commits.push(i.batchSize) })
    const first = store.storeRetained(retained('x'))
    await new Promise((resolve) => setImmediate(resolve))
    const second = store.storeRetained(retained('y'))
    await Promise.all([first, second])
    expect(commits).toEqual([2])
  })

  test('flush() commits pending writes at once', async () => {
    const path = dbPath()
    const store = await open({ path, commitIntervalMs: 60_000 })
    const write = store.storeRetained(retained('x'))
    expect(rowsOnDisk(path, 'retained')).toBe(0)
    await store.flush()
    await write
    expect(rowsOnDisk(path, 'retained')).toBe(1)
  })

  test('a failed commit rejects every write of the batch and memory forgets them', async () => {
    const path = dbPath()
    const store = await open({ path })
    poisonRetainedTopic(path)
    await store.storeRetained(retained('kept'))

    const told: Array<Error | null> = []
    store.outgoingEnqueueCombiNotify([{ clientId: 'c3' }], { cmd: 'publish', topic: 'q', payload: Buffer.from('n'), qos: 1, brokerId: 'broker-1', brokerCounter: 2 }, { stored: (err) => told.push(err) })
    const batch = [
      store.addSubscriptions({ id: 'c1' }, [{ topic: 'sensors/#', qos: 1 }]),
      store.outgoingEnqueueCombi([{ clientId: 'c2' }], { cmd: 'publish', topic: 'q', payload: Buffer.from('m'), qos: 1, brokerId: 'broker-1', brokerCounter: 1 }),
      store.storeRetained(retained('poison')),
    ]
    const results = await Promise.allSettled(batch)
    for (const result of results) {
      expect(result.status).toBe('rejected')
      const reason = (result as PromiseRejectedResult).reason as StoreCommitError
      expect(reason).toBeInstanceOf(StoreCommitError)
      expect(reason.code).toBe('ERR_STORE_COMMIT')
      expect(reason.batchSize).toBe(4)
      expect(reason.message).toMatch(/FOREIGN KEY/)
    }
    expect(told).toEqual([results[0]!.status === 'rejected' ? (results[0] as PromiseRejectedResult).reason : null])
    // the in-memory index and counters were rebuilt from disk: nothing of the batch remains
    expect(await store.subscriptionsByTopic('sensors/t')).toEqual([])
    expect(await store.countOffline()).toEqual({ subsCount: 0, clientsCount: 0 })
    expect(store.stats()).toMatchObject({ retained: 1, queued: 0, subscriptions: 0 })
    expect(queuedCopiesOnDisk(path)).toBe(0)
    // and the store keeps working
    await store.addSubscriptions({ id: 'c1' }, [{ topic: 'sensors/#', qos: 1 }])
    expect(await store.subscriptionsByTopic('sensors/t')).toHaveLength(1)
  })

  test('a write that fails alone is undone alone; its batch still commits', async () => {
    const store = await open({ path: ':memory:' })
    const ok = store.storeRetained(retained('a'))
    const missing = store.incomingDelPacket({ id: 'c' }, { messageId: 7 })
    await expect(missing).rejects.toThrow(/no such packet/)
    await ok
    const list = await store.createRetainedStream('#').toArray()
    expect(list.map((p) => p.topic)).toEqual(['a'])
  })

  test('reads wait for pending writes to commit', async () => {
    const path = dbPath()
    const store = await open({ path, commitIntervalMs: 50 })
    void store.incomingStorePacket({ id: 'c' }, { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 2, messageId: 5 })
    const got = await store.incomingGetPacket({ id: 'c' }, { messageId: 5 })
    expect(got.topic).toBe('t')
    expect(rowsOnDisk(path, 'incoming')).toBe(1)
  })

  test('calls after close() reject with StoreClosedError; close() is idempotent', async () => {
    const store = await open({ path: ':memory:' })
    const pending = store.storeRetained(retained('a'))
    const closing = store.close()
    expect(store.close()).toBe(closing)
    await closing
    await pending
    await expect(store.storeRetained(retained('b'))).rejects.toMatchObject({ code: 'ERR_STORE_CLOSED' })
    await expect(store.outgoingStream({ id: 'c' }).toArray()).rejects.toThrow(/closed/)
  })
})
