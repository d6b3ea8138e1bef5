import { describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import MQEmitter from 'mqemitter'
import { cacheTopicMatches, type TopicMatcher } from '../../src/mqtt/match-cache.js'

// qlobber ships no types; the cache only needs the TopicMatcher shape
const { Qlobber } = createRequire(import.meta.url)('qlobber') as { Qlobber: new (options: object) => TopicMatcher }
const trie = () => new Qlobber({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true })
const sorted = (values: unknown[]) => [...(values as string[])].sort()

describe('cacheTopicMatches', () => {
  it('answers what the trie answers, before and after every kind of change', () => {
    const cached = trie()
    const plain = trie()
    cacheTopicMatches(cached)
    const topics = ['a/b', 'a/c', 'a/', 'x/y/z', '$SYS/a']
    const check = () => {
      for (const topic of topics) {
        expect(sorted(cached.match(topic)), topic).toEqual(sorted(plain.match(topic)))
        expect(sorted(cached.match(topic)), `${topic} (second look)`).toEqual(sorted(plain.match(topic)))
      }
    }
    check()
    for (const [filter, value] of [['a/+', 'L1'], ['#', 'L2'], ['a/b', 'L3'], ['x/#', 'L4'], ['a/+', 'L5']] as const) {
      cached.add(filter, value)
      plain.add(filter, value)
      check()
    }
    cached.remove('a/+', 'L1')
    plain.remove('a/+', 'L1')
    check()
    cached.remove('x/#')
    plain.remove('x/#')
    check()
    cached.clear()
    plain.clear()
    check()
  })

  /** A trie with one subscription whose own look-ups are counted, under the cache. */
  function countedTrie(filter: string, maxTopics?: number) {
    const matcher = trie()
    matcher.add(filter, 'L')
    const counted = { matcher, lookups: 0 }
    const match = matcher.match.bind(matcher)
    matcher.match = (topic: string) => {
      counted.lookups++
      return match(topic)
    }
    cacheTopicMatches(matcher, maxTopics)
    return counted
  }

  it('serves a repeated topic without asking the trie again', () => {
    const counted = countedTrie('s/+')
    const first = counted.matcher.match('s/1')
    expect(counted.matcher.match('s/1')).toBe(first)
    expect(counted.lookups).toBe(1)
    counted.matcher.add('s/1', 'M')
    expect(sorted(counted.matcher.match('s/1'))).toEqual(['L', 'M'])
    expect(counted.lookups).toBe(2)
  })

  it('does not answer the topic asked last from before a change', () => {
    const counted = countedTrie('s/+')
    expect(counted.matcher.match('s/1')).toEqual(['L'])
    counted.matcher.remove('s/+', 'L')
    expect(counted.matcher.match('s/1')).toEqual([])
    counted.matcher.add('s/#', 'M')
    expect(counted.matcher.match('s/1')).toEqual(['M'])
    counted.matcher.clear()
    expect(counted.matcher.match('s/1')).toEqual([])
  })

  it('starts over when it holds the most topics it may', () => {
    const counted = countedTrie('#', 2)
    counted.matcher.match('t/1')
    counted.matcher.match('t/2')
    counted.matcher.match('t/3') // full: forgets t/1 and t/2
    counted.matcher.match('t/3')
    expect(counted.lookups).toBe(3)
    counted.matcher.match('t/1')
    expect(counted.lookups).toBe(4)
  })

  it('keeps mqemitter delivering to exactly the current listeners', async () => {
    const mq = MQEmitter({ matchEmptyLevels: true })
    cacheTopicMatches((mq as unknown as { _matcher: TopicMatcher })._matcher)
    let seen: string[] = []
    const emit = async (topic: string) => {
      seen = []
      await new Promise<void>((resolve) => mq.emit({ topic, payload: '' }, () => resolve()))
      return seen.sort()
    }
    const first = (_m: unknown, cb: () => void) => void (seen.push('first'), cb())
    const second = (_m: unknown, cb: () => void) => void (seen.push('second'), cb())
    mq.on('d/+', first)
    expect(await emit('d/1')).toEqual(['first'])
    mq.on('d/1', second)
    expect(await emit('d/1')).toEqual(['first', 'second'])
    await new Promise<void>((resolve) => mq.removeListener('d/+', first, () => resolve()))
    expect(await emit('d/1')).toEqual(['second'])
    expect(await emit('d/2')).toEqual([])
  })
})
