import { afterEach, describe, expect, test } from 'vitest'
import { SESSION_NEVER_EXPIRES, SqlitePersistence } from '../../src/persistence/sqlite-persistence.js'

const stores: SqlitePersistence[] = []
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()))
})

async function open(): Promise<SqlitePersistence> {
  const store = new SqlitePersistence(':memory:')
  stores.push(store)
  await store.setup({ id: 'b', counter: 0 })
  return store
}

const v5 = (expiryIntervalSeconds: number) => ({ expiryIntervalSeconds, protocolVersion: 5 })

describe('session expiry', () => {
  test('a disconnected session is due exactly expiry seconds after it left', async () => {
    const store = await open()
    const t = 1_700_000_000_000
    await store.sessionConnected('ten', v5(10), t)
    await store.sessionConnected('zero', v5(0), t)
    await store.sessionDisconnected('ten', t)
    await store.sessionDisconnected('zero', t)
    expect(store.expiredSessions(t)).toEqual(['zero'])
    expect(store.expiredSessions(t + 9_999)).toEqual(['zero'])
    expect(store.expiredSessions(t + 10_000)).toEqual(['zero', 'ten'])
  })

  test('connected sessions and 0xFFFFFFFF sessions never expire; reconnecting stops the clock', async () => {
    const store = await open()
    const t = 1_700_000_000_000
    await store.sessionConnected('online', v5(1), t)
    await store.sessionConnected('forever', { expiryIntervalSeconds: SESSION_NEVER_EXPIRES, protocolVersion: 4 }, t)
    await store.sessionDisconnected('forever', t)
    await store.sessionConnected('back', v5(1), t)
    await store.sessionDisconnected('back', t)
    await store.sessionConnected('back', v5(1), t + 500)
    const farFuture = t + 10 * 365 * 24 * 3600 * 1000 * 1000
    expect(store.expiredSessions(farFuture)).toEqual([])
  })

  test('disconnecting an unknown session is a no-op', async () => {
    const store = await open()
    await store.sessionDisconnected('ghost', 0)
    expect(store.expiredSessions(Number.MAX_SAFE_INTEGER)).toEqual([])
  })

  test('deleteSession removes subscriptions (memory index too), queue, incoming, will and record', async () => {
    const store = await open()
    const c = { id: 'gone' }
    const keep = { id: 'kept' }
    for (const client of [c, keep]) {
      await store.sessionConnected(client.id, v5(60), 0)
      await store.addSubscriptions(client, [{ topic: 'a/#', qos: 1 }])
      await store.outgoingEnqueue({ clientId: client.id }, { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 1, brokerId: 'b', brokerCounter: 1 })
      await store.incomingStorePacket(client, { cmd: 'publish', topic: 'q', payload: Buffer.from('y'), qos: 2, messageId: 3 })
      await store.putWill(client, { topic: 'will', payload: Buffer.from('bye'), qos: 0, retain: false })
      await store.sessionDisconnected(client.id, 0)
    }
    await store.deleteSession('gone')
    expect(await store.subscriptionsByClient(c)).toEqual([])
    expect((await store.subscriptionsByTopic('a/b')).map((s) => s.clientId)).toEqual(['kept'])
    expect(await store.outgoingStream(c).toArray()).toEqual([])
    await expect(store.incomingGetPacket(c, { messageId: 3 })).rejects.toThrow(/no such packet/)
    expect(await store.getWill(c)).toBeUndefined()
    expect(store.expiredSessions(Number.MAX_SAFE_INTEGER)).toEqual(['kept'])
    expect(store.stats()).toMatchObject({ subscriptions: 1, queued: 1, sessions: 1 })
    expect(await store.countOffline()).toEqual({ subsCount: 1, clientsCount: 1 })
  })
})

describe('stats()', () => {
  test('counts retained, subscriptions (QoS 0 too), queued and in-flight messages, and database size', async () => {
    const store = await open()
    await store.storeRetained({ topic: 'r/1', payload: Buffer.from('x') })
    await store.storeRetained({ topic: 'r/1', payload: Buffer.from('y') })
    await store.storeRetained({ topic: 'r/2', payload: Buffer.from('z') })
    await store.storeRetained({ topic: 'r/2', payload: Buffer.alloc(0) })
    await store.addSubscriptions({ id: 'c' }, [{ topic: 'a', qos: 0 }, { topic: 'b', qos: 1 }])
    const publish = (n: number) => ({ cmd: 'publish', topic: 'b', payload: Buffer.from('p'), qos: 1, brokerId: 'b', brokerCounter: n })
    await store.outgoingEnqueueCombi([{ clientId: 'c' }, { clientId: 'd' }], publish(1))
    await store.outgoingUpdate({ id: 'c' }, { ...publish(1), messageId: 1 })
    const stats = store.stats()
    expect(stats).toMatchObject({ retained: 1, subscriptions: 2, queued: 1, inflight: 1 })
    expect(stats.dbBytes).toBeGreaterThan(0)
  })
})
