/** The part of a qlobber topic matcher (mqemitter's `_matcher`) that the cache needs. */
export interface TopicMatcher {
  match(topic: string): unknown[]
  add(topic: string, value: unknown): unknown
  remove(topic: string, value?: unknown): unknown
  clear(): unknown
}

/** Distinct topics remembered at once; a full cache starts over rather than tracking recency. */
export const MATCH_CACHE_TOPICS = 10_000

/**
 * Remembers the listeners each topic matched until the subscriptions change. mqemitter asks its
 * trie on every message, which splits the topic and walks every level (a tenth of the broker's
 * time with one subscriber); a fleet publishes to the same topics over and over and subscribes
 * far less often. The cached arrays are shared between calls: callers only read them.
 */
export function cacheTopicMatches(matcher: TopicMatcher, maxTopics = MATCH_CACHE_TOPICS): void {
  const match = matcher.match.bind(matcher)
  let cache = new Map<string, unknown[]>()
  const forget = (): void => {
    if (cache.size > 0) cache = new Map()
  }
  for (const change of ['add', 'remove', 'clear'] as const) {
    const original = matcher[change].bind(matcher) as (...args: unknown[]) => unknown
    matcher[change] = ((...args: unknown[]) => {
      forget()
      return original(...args)
    }) as never
  }
  matcher.match = (topic: string): unknown[] => {
    let listeners = cache.get(topic)
    if (listeners === undefined) {
      listeners = match(topic)
      if (cache.size >= maxTopics) cache = new Map()
      cache.set(topic, listeners)
    }
    return listeners
  }
}
