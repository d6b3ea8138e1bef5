import { afterEach, describe, expect, it } from 'vitest'
import { MemoryPersistence } from '../../src/persistence/memory-persistence.js'
import { SqlitePersistence } from '../../src/persistence/sqlite-persistence.js'
import { TopicMemo } from '../../src/mqtt/topic-memo.js'

// Both stores remember subscriptionsByTopic answers per topic until a subscription changes; every
// kind of change must show in the very next answer, identifiers included.

interface Store {
  setup(broker: object): Promise<void>
  addSubscriptions(client: { id: string }, subs: Array<{ topic: string; qos: number; subscriptionIdentifier?: number }>): Promise<void>
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>
  cleanSubscriptions(client: { id: string }): Promise<void>
  subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number; subscriptionIdentifier?: number }>>
}

const opened: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const close of opened.splice(0)) await close()
})

const stores: Array<[string, () => Promise<Store>]> = [
  ['memory', async () => new MemoryPersistence() as unknown as Store],
  [
    'sqlite',
    async () => {
      const store = new SqlitePersistence(':memory:')
      await store.setup({ id: 'b' })
      opened.push(() => store.close())
      return store as unknown as Store
    },
  ],
]

describe.each(stores)('subscriptionsByTopic on the %s store', (_name, open) => {
  const matches = async (store: Store, topic: string) =>
    (await store.subscriptionsByTopic(topic)).map((m) => `${m.clientId} ${m.topic} ${m.qos}${m.subscriptionIdentifier === undefined ? '' : ` #${m.subscriptionIdentifier}`}`).sort()

  it('answers every change at once, though the same topic was asked before', async () => {
    const store = await open()
    const a = { id: 'a' }
    const b = { id: 'b' }
    expect(await matches(store, 'x/1')).toEqual([])
    await store.addSubscriptions(a, [{ topic: 'x/+', qos: 1 }])
    expect(await matches(store, 'x/1')).toEqual(['a x/+ 1'])
    expect(await matches(store, 'x/1')).toEqual(['a x/+ 1'])
    await store.addSubscriptions(b, [{ topic: 'x/#', qos: 2, subscriptionIdentifier: 7 }])
    expect(await matches(store, 'x/1')).toEqual(['a x/+ 1', 'b x/# 2 #7'])
    // re-subscribing changes the QoS and drops the identifier
    await store.addSubscriptions(b, [{ topic: 'x/#', qos: 1 }])
    expect(await matches(store, 'x/1')).toEqual(['a x/+ 1', 'b x/# 1'])
    // down to QoS 0: no offline queueing, so no match
    await store.addSubscriptions(a, [{ topic: 'x/+', qos: 0 }])
    expect(await matches(store, 'x/1')).toEqual(['b x/# 1'])
    await store.removeSubscriptions(b, ['x/#'])
    expect(await matches(store, 'x/1')).toEqual([])
    await store.addSubscriptions(a, [{ topic: 'x/1', qos: 1 }, { topic: 'x/+', qos: 2 }])
    expect(await matches(store, 'x/1')).toEqual(['a x/+ 2', 'a x/1 1'])
    await store.cleanSubscriptions(a)
    expect(await matches(store, 'x/1')).toEqual([])
  })

  it('does not keep an answer computed while a subscription was being added', async () => {
    const store = await open()
    const asked = store.subscriptionsByTopic('y/1')
    const added = store.addSubscriptions({ id: 'a' }, [{ topic: 'y/1', qos: 1 }])
    await Promise.all([asked, added])
    expect(await matches(store, 'y/1')).toEqual(['a y/1 1'])
  })
})

describe('TopicMemo', () => {
  it('keeps no answer computed before a change', () => {
    const memo = new TopicMemo<string>()
    const generation = memo.generation
    memo.forget()
    memo.set('t', 'old', generation)
    expect(memo.get('t')).toBeUndefined()
    memo.set('t', 'new')
    expect(memo.get('t')).toBe('new')
  })

  it('does not answer the topic asked last once forgotten, nor from a stale set', () => {
    const memo = new TopicMemo<string>()
    memo.set('t', 'first')
    expect(memo.get('t')).toBe('first')
    memo.forget()
    expect(memo.get('t')).toBeUndefined()
    const generation = memo.generation
    memo.set('u', 'now')
    memo.forget()
    memo.set('t', 'stale', generation)
    expect(memo.get('t')).toBeUndefined()
    expect(memo.get('u')).toBeUndefined()
  })

  it('starts over when full', () => {
    const memo = new TopicMemo<number>(2)
    memo.set('a', 1)
    memo.set('b', 2)
    memo.set('c', 3)
    expect([memo.get('a'), memo.get('b'), memo.get('c')]).toEqual([undefined, undefined, 3])
  })
})

describe('subscriptionsByTopicNow on the sqlite store', () => {
  it('gives the promise-free answer the patched aedes takes, and refuses once closed', async () => {
    const store = new SqlitePersistence(':memory:')
    await store.setup({ id: 'b' })
    await store.addSubscriptions({ id: 'a' }, [{ topic: 'x/+', qos: 1 }])
    const now = store.subscriptionsByTopicNow('x/1')
    expect(now.map((m) => `${m.clientId} ${m.topic} ${m.qos}`)).toEqual(['a x/+ 1'])
    expect(await store.subscriptionsByTopic('x/1')).toEqual(now)
    await store.close()
    // aedes emits the error on the broker, as it does for a rejected subscriptionsByTopic
    expect(() => store.subscriptionsByTopicNow('x/1')).toThrow()
    await expect(store.subscriptionsByTopic('x/1')).rejects.toThrow()
  })
})
