import type { AedesPublishPacket } from 'aedes'
import { describe, expect, test } from 'vitest'
import { planOfflineQueue, type StoredSubscription } from '../../src/broker/delivery/offline-queue.js'
import type { StoredListener } from '../../src/persistence/group-commit.js'

// What the store is asked to queue for one publish: one copy per session, at the right QoS.
function recordingStore() {
  const calls: Array<{ sessions: string[]; qos: number }> = []
  const store = planOfflineQueue({
    async outgoingEnqueueCombi(subs: StoredSubscription[], packet: AedesPublishPacket) {
      calls.push({ sessions: subs.map((s) => s.clientId), qos: packet.qos })
    },
  })
  return { store, calls }
}

const packet = { cmd: 'publish', topic: 't/x', payload: Buffer.from('x'), qos: 1, retain: false, dup: false } as unknown as AedesPublishPacket
const sub = (clientId: string, topic = 't/#', qos = 1): StoredSubscription => ({ clientId, topic, qos })

describe('offline queue planning', () => {
  test('distinct sessions granted enough: one call with the subscriptions as they are', async () => {
    const { store, calls } = recordingStore()
    const subs = Array.from({ length: 10 }, (_, i) => sub(`s${i}`))
    await store.outgoingEnqueueCombi(subs, packet)
    expect(calls).toEqual([{ sessions: subs.map((s) => s.clientId), qos: 1 }])
  })

  test.each([3, 20])('a session matched by two filters gets one copy (%i subscriptions)', async (count) => {
    const { store, calls } = recordingStore()
    const subs = [sub('a', 't/+'), ...Array.from({ length: count - 2 }, (_, i) => sub(`s${i}`)), sub('a', 't/#')]
    await store.outgoingEnqueueCombi(subs, packet)
    expect(calls.flatMap((c) => c.sessions).sort()).toEqual(['a', ...Array.from({ length: count - 2 }, (_, i) => `s${i}`)].sort())
  })

  test('a session granted less gets its copy at its QoS', async () => {
    const { store, calls } = recordingStore()
    await store.outgoingEnqueueCombi([sub('a', 't/#', 0), sub('b')], packet)
    expect(calls).toEqual(expect.arrayContaining([{ sessions: ['a'], qos: 0 }, { sessions: ['b'], qos: 1 }]))
  })
})

describe('offline queue planning, for a store that tells a listener (the SQLite store)', () => {
  function notifyingStore() {
    const viaPromise: string[][] = []
    const viaNotify: string[][] = []
    const store = planOfflineQueue({
      async outgoingEnqueueCombi(subs: StoredSubscription[]) {
        viaPromise.push(subs.map((s) => s.clientId))
      },
      outgoingEnqueueCombiNotify(subs: StoredSubscription[], _packet: AedesPublishPacket, listener: StoredListener) {
        viaNotify.push(subs.map((s) => s.clientId))
        queueMicrotask(() => listener.stored(null))
      },
    })
    return { store, viaPromise, viaNotify }
  }
  const told = () => {
    let resolve!: (err: Error | null) => void
    const outcome = new Promise<Error | null>((r) => (resolve = r))
    return { listener: { stored: (err: Error | null) => resolve(err) }, outcome }
  }

  test('the common case goes to the store as it is; nothing to queue is durable at once', async () => {
    const { store, viaPromise, viaNotify } = notifyingStore()
    const first = told()
    store.outgoingEnqueueCombiNotify!([sub('a')], packet, first.listener)
    expect(await first.outcome).toBeNull()
    const none = told()
    store.outgoingEnqueueCombiNotify!([], packet, none.listener)
    expect(await none.outcome).toBeNull()
    expect(viaNotify).toEqual([['a']])
    expect(viaPromise).toEqual([])
  })

  test('planned copies go through the promise method; the listener hears once all are queued', async () => {
    const { store, viaPromise, viaNotify } = notifyingStore()
    const { listener, outcome } = told()
    store.outgoingEnqueueCombiNotify!([sub('a', 't/+'), sub('a', 't/#'), sub('b', 't/#', 0)], packet, listener)
    expect(await outcome).toBeNull()
    expect(viaPromise.flat().sort()).toEqual(['a', 'b'])
    expect(viaNotify).toEqual([])
  })

  test('a failed enqueue reaches the listener as its error', async () => {
    const store = planOfflineQueue({
      async outgoingEnqueueCombi() {
        throw new Error('disk full')
      },
      outgoingEnqueueCombiNotify(_subs: StoredSubscription[], _packet: AedesPublishPacket, _listener: StoredListener) {},
    })
    const { listener, outcome } = told()
    store.outgoingEnqueueCombiNotify!([sub('a', 't/#', 0)], packet, listener)
    expect(await outcome).toMatchObject({ message: 'disk full' })
  })
})
