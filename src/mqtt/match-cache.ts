import { MATCH_CACHE_TOPICS, TopicMemo } from './topic-memo.js'

/** The part of a qlobber topic matcher (mqemitter's `_matcher`) that the cache needs. */
export interface TopicMatcher {
  match(topic: string): unknown[]
  add(topic: string, value: unknown): unknown
  remove(topic: string, value?: unknown): unknown
  clear(): unknown
}

/**
 * Remembers the listeners each topic matched until the subscriptions change. mqemitter asks its
 * trie on every message, which splits the topic and walks every level (a tenth of the broker's
 * time with one subscriber); a fleet publishes to the same topics over and over and subscribes
 * far less often.
 */
export function cacheTopicMatches(matcher: TopicMatcher, maxTopics = MATCH_CACHE_TOPICS): void {
  const match = matcher.match.bind(matcher)
  // the metrics hook asks about a message's topic and mqemitter then asks again (the memo's last answer)
  const memo = new TopicMemo<unknown[]>(maxTopics)
  for (const change of ['add', 'remove', 'clear'] as const) {
    const original = matcher[change].bind(matcher) as (...args: unknown[]) => unknown
    matcher[change] = ((...args: unknown[]) => {
      memo.forget()
      return original(...args)
    }) as never
  }
  matcher.match = (topic: string): unknown[] => {
    let listeners = memo.get(topic)
    if (listeners === undefined) {
      listeners = match(topic)
      memo.set(topic, listeners)
    }
    return listeners
  }
}
