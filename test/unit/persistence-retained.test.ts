import { afterEach, describe, expect, test } from 'vitest'
import { SqlitePersistence } from '../../src/persistence/sqlite-persistence.js'
import { SubscriptionIndex } from '../../src/persistence/subscription-index.js'
import { topicRange } from '../../src/persistence/topic-filter.js'

const stores: SqlitePersistence[] = []
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()))
})

const TOPICS = ['a', 'a/b', 'a/b/c', 'a/', 'ab/c', 'x/b', '/b', '$SYS/broker/uptime', '$share/x', 'né/ö', 'a/\u{10FFFF}']

async function storeWith(topics: readonly string[], pageSize = 256): Promise<SqlitePersistence> {
  const store = new SqlitePersistence({ path: ':memory:', pageSize })
  stores.push(store)
  await store.setup({ id: 'b', counter: 0 })
  await Promise.all(topics.map((topic) => store.storeRetained({ cmd: 'publish', topic, payload: Buffer.from(topic), qos: 0, retain: true })))
  return store
}

async function lookup(store: SqlitePersistence, ...filters: string[]): Promise<string[]> {
  const list = await store.createRetainedStreamCombi(filters).toArray()
  return list.map((p) => String(p.topic)).sort()
}

describe('retained lookup by filter', () => {
  test.each([
    ['a', ['a']],
    ['a/+', ['a/', 'a/b', 'a/\u{10FFFF}']],
    ['a/#', ['a', 'a/', 'a/b', 'a/b/c', 'a/\u{10FFFF}']],
    ['+/b', ['/b', 'a/b', 'x/b']],
    ['+', ['a']],
    ['#', ['/b', 'a', 'a/', 'a/b', 'a/b/c', 'a/\u{10FFFF}', 'ab/c', 'né/ö', 'x/b']],
    ['+/+/+', ['a/b/c']],
    ['$SYS/#', ['$SYS/broker/uptime']],
    ['+/broker/uptime', []],
    ['né/+', ['né/ö']],
    ['nope/#', []],
  ])('%s', async (filter, expected) => {
    const store = await storeWith(TOPICS)
    expect(await lookup(store, filter)).toEqual([...expected].sort())
  })

  test('same results when read in pages of two', async () => {
    const store = await storeWith(TOPICS, 2)
    expect(await lookup(store, '#')).toHaveLength(9)
    expect(await lookup(store, 'a/#')).toHaveLength(5)
  })

  test('overlapping filters return each message once', async () => {
    const store = await storeWith(TOPICS)
    expect(await lookup(store, 'a/+', 'a/#', 'a/b')).toEqual(['a', 'a/', 'a/b', 'a/b/c', 'a/\u{10FFFF}'].sort())
  })

  test('returns the stored message with its fields, last write wins, empty payload deletes', async () => {
    const store = await storeWith([])
    const properties = { messageExpiryInterval: 60, userProperties: { k: 'v' } }
    await store.storeRetained({ cmd: 'publish', topic: 't', payload: Buffer.from('1'), qos: 1, retain: true })
    await store.storeRetained({ cmd: 'publish', topic: 't', payload: Buffer.from('2'), qos: 1, retain: true, properties, messageExpiry: 5 })
    expect(await store.createRetainedStream('t').toArray()).toEqual([
      { cmd: 'publish', topic: 't', payload: Buffer.from('2'), qos: 1, retain: true, properties, messageExpiry: 5 },
    ])
    await store.storeRetained({ topic: 't', payload: Buffer.alloc(0) })
    expect(await store.createRetainedStream('#').toArray()).toEqual([])
  })
})

describe('topic filter helpers', () => {

  test('topicRange bounds the literal prefix', () => {
    expect(topicRange('#')).toEqual({ lower: '', upper: undefined })
    expect(topicRange('a/b/+/c')).toEqual({ lower: 'a/b', upper: 'a/c' })
    expect(topicRange('a\u{D7FF}/#')).toEqual({ lower: 'a\u{D7FF}', upper: 'a\u{E000}' })
    expect(topicRange('a\u{10FFFF}/#')).toEqual({ lower: 'a\u{10FFFF}', upper: 'b' })
  })
})

describe('subscription index', () => {
  test('`+` matches an empty level, as mqemitter does', () => {
    const index = new SubscriptionIndex()
    index.add('c', { topic: 'a/+', qos: 1 })
    expect(index.match('a/')).toEqual([{ clientId: 'c', topic: 'a/+', qos: 1, rh: undefined, rap: undefined, nl: undefined }])
  })

  test('matches carry the Subscription Identifier while the subscription has one', () => {
    const index = new SubscriptionIndex()
    index.add('c', { topic: 'a/#', qos: 1, subscriptionIdentifier: 9 })
    index.add('d', { topic: 'a/#', qos: 2 })
    expect(index.match('a/b').map((m) => [m.clientId, m.subscriptionIdentifier])).toEqual([['c', 9], ['d', undefined]])
    index.add('c', { topic: 'a/#', qos: 1 })
    expect(index.match('a/b').map((m) => m.subscriptionIdentifier)).toEqual([undefined, undefined])
  })

  test('QoS 0 subscriptions count as clients but are not matched', () => {
    const index = new SubscriptionIndex()
    index.add('c', { topic: 'x', qos: 1 })
    index.add('c', { topic: 'x', qos: 0 })
    expect(index.match('x')).toEqual([])
    expect([index.totalCount, index.matchableCount, index.clientCount]).toEqual([1, 0, 1])
    index.remove('c', 'x')
    expect(index.clientCount).toBe(0)
  })
})
