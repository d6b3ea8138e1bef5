// Retained-message lookup by filter, where the question is the reverse of the subscription
// trie's: which stored topics does one filter match. Matching itself is src/mqtt/topic-match.ts.

export function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#')
}

/**
 * A range of topics, in SQLite's binary (UTF-8, hence code point) order, that contains every topic
 * the filter can match: the levels before the first wildcard are a literal prefix. `lower` ''
 * and `upper` undefined mean "scan everything" (a filter starting with a wildcard).
 */
export function topicRange(filter: string): { lower: string; upper: string | undefined } {
  const levels = filter.split('/')
  const firstWildcard = levels.findIndex((level) => level === '+' || level === '#')
  const prefix = levels.slice(0, firstWildcard === -1 ? levels.length : firstWildcard).join('/')
  // Without the trailing '/': `a/#` must also find `a` itself.
  return { lower: prefix, upper: prefix === '' ? undefined : successor(prefix) }
}

/** The smallest string greater than every string starting with `prefix`, if one exists. */
function successor(prefix: string): string | undefined {
  const codePoints = [...prefix]
  while (codePoints.length > 0) {
    const last = (codePoints.pop() as string).codePointAt(0) as number
    let next = last + 1
    if (next === 0xd800) next = 0xe000 // surrogates are not characters
    if (next <= 0x10ffff) return codePoints.join('') + String.fromCodePoint(next)
  }
  return undefined
}
