import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { storeFixtures } from '../helpers/store-fixtures.js'
import { SqlitePersistence, type BrokerRef } from '../../src/persistence/sqlite-persistence.js'

const { dbPath: fresh, track } = storeFixtures()
const dbPath = (): string => fresh('mqlite.db')

// ackWindowMs 0: writeEverything awaits each enqueue before the next call, which a held message
// (persistence-held.test.ts) would answer only once written or acknowledged
async function open(path: string, broker: BrokerRef = { id: 'broker-1', counter: 0 }): Promise<SqlitePersistence> {
  const store = new SqlitePersistence({ path, ackWindowMs: 0 })
  track(store)
  await store.setup(broker)
  return store
}

const publish = (n: number, qos = 1) => ({
  cmd: 'publish', topic: `q/${n}`, payload: Buffer.from(`m${n}`), qos, retain: false, dup: false, brokerId: 'broker-1', brokerCounter: n,
})

/** Writes one of everything the store keeps, as a broker would during a run. */
async function writeEverything(store: SqlitePersistence): Promise<void> {
  const sub = { id: 'sub' }
  await store.storeRetained({ cmd: 'publish', topic: 'status/1', payload: Buffer.from('on'), qos: 1, retain: true })
  await store.addSubscriptions(sub, [
    { topic: 'q/#', qos: 2, nl: true, rap: true, rh: 1, subscriptionIdentifier: 42 },
    { topic: 'zero', qos: 0 },
  ])
  await store.sessionConnected('sub', { expiryIntervalSeconds: 3600, protocolVersion: 5 }, 1_000)
  // queue: #1 in flight (QoS 1), #2 at PUBREL (QoS 2), #3 queued
  for (const n of [1, 2, 3]) await store.outgoingEnqueueCombi([{ clientId: 'sub' }], publish(n, n === 2 ? 2 : 1))
  await store.outgoingUpdate(sub, { ...publish(1), messageId: 11 })
  await store.outgoingUpdate(sub, { ...publish(2, 2), messageId: 12 })
  await store.outgoingUpdate(sub, { cmd: 'pubrel', messageId: 12 })
  // incoming QoS 2 awaiting PUBREL, and a will
  await store.incomingStorePacket({ id: 'pub' }, { cmd: 'publish', topic: 'in', payload: Buffer.from('q2'), qos: 2, messageId: 77 })
  await store.putWill({ id: 'pub' }, { topic: 'pub/gone', payload: Buffer.from('bye'), qos: 1, retain: false })
}

async function expectEverything(store: SqlitePersistence): Promise<void> {
  const sub = { id: 'sub' }
  expect(await store.createRetainedStream('status/+').toArray()).toEqual([
    { cmd: 'publish', topic: 'status/1', payload: Buffer.from('on'), qos: 1, retain: true },
  ])
  expect(await store.subscriptionsByClient(sub)).toEqual([
    { topic: 'q/#', qos: 2, nl: true, rap: true, rh: 1, subscriptionIdentifier: 42 },
    { topic: 'zero', qos: 0 },
  ])
  expect(await store.subscriptionsByTopic('q/9')).toEqual([
    { clientId: 'sub', topic: 'q/#', qos: 2, nl: true, rap: true, rh: 1, subscriptionIdentifier: 42 },
  ])
  expect(await store.countOffline()).toEqual({ subsCount: 1, clientsCount: 1 })
  const queue = await store.outgoingStream(sub).toArray()
  expect(queue.map((p) => [p.cmd, p.brokerCounter, p.messageId])).toEqual([
    ['publish', 1, 11],
    ['pubrel', undefined, 12],
    ['publish', 3, undefined],
  ])
  expect(queue[0]?.payload).toEqual(Buffer.from('m1'))
  expect(await store.incomingGetPacket({ id: 'pub' }, { messageId: 77 })).toMatchObject({ topic: 'in', qos: 2, messageId: 77, payload: Buffer.from('q2') })
  expect(await store.getWill({ id: 'pub' })).toMatchObject({ topic: 'pub/gone', clientId: 'pub', brokerId: 'broker-1' })
  // the will belongs to a broker that is gone: a restarted broker finds it
  expect(await store.streamWill({ 'broker-2': Date.now() }).toArray()).toHaveLength(1)
  expect(store.stats()).toMatchObject({ retained: 1, subscriptions: 2, queued: 1, inflight: 2, sessions: 1 })
}

describe('restart', () => {
  test('after close and reopen, everything is back', async () => {
    const path = dbPath()
    const first = await open(path)
    await writeEverything(first)
    await first.close()
    await expectEverything(await open(path, { id: 'broker-2', counter: 0 }))
  })

  test('after kill -9 right after the writes resolved, everything is back', async () => {
    const path = dbPath()
    // The child writes through the store, then SIGKILLs itself: no close, no checkpoint.
    const storeModule = fileURLToPath(new URL('../../src/persistence/sqlite-persistence.ts', import.meta.url))
    const script = `
      import { SqlitePersistence } from ${JSON.stringify(storeModule)}
      const store = new SqlitePersistence({ path: ${JSON.stringify(path)}, ackWindowMs: 0 })
      await store.setup({ id: 'broker-1', counter: 0 })
      const publish = ${publish.toString()}
      const write = ${writeEverything.toString()}
      await write(store)
      process.kill(process.pid, 'SIGKILL')
    `.replace(/async function writeEverything\(store\)/, 'async function (store)')
    const child = promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script])
    const outcome = await child.then(() => 'exited', (err: { signal?: string; stderr?: string }) => err.signal ?? err.stderr)
    expect(outcome).toBe('SIGKILL')
    await expectEverything(await open(path, { id: 'broker-2', counter: 0 }))
  })

  test('sessions connected when the broker died start their expiry at the next start', async () => {
    const path = dbPath()
    const first = await open(path)
    await first.sessionConnected('was-online', { expiryIntervalSeconds: 60, protocolVersion: 5 }, 1_000)
    await first.close()
    const before = Date.now()
    const second = await open(path)
    expect(second.expiredSessions(before - 1)).toEqual([])
    expect(second.expiredSessions(Date.now() + 60_000)).toEqual(['was-online'])
  })

  test('a fixed broker id resumes its packet counter above the queued messages', async () => {
    const path = dbPath()
    const first = await open(path)
    await first.outgoingEnqueue({ clientId: 'c' }, publish(500))
    // a higher counter of another broker id (a run without a fixed id) does not count
    await first.outgoingEnqueue({ clientId: 'c' }, { ...publish(900), brokerId: 'earlier-run' })
    await first.outgoingEnqueue({ clientId: 'c' }, { ...publish(7), brokerId: 'earlier-run' })
    await first.close()
    const broker = { id: 'broker-1', counter: 0 }
    await open(path, broker)
    expect(broker.counter).toBe(500)
    const other = { id: 'another-id', counter: 0 }
    await (await open(path, other)).close()
    expect(other.counter).toBe(0)
  })
})
