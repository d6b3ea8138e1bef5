/**
 * Does a topic filter match a topic name? `+` matches one level, `#` the rest (including the
 * parent level, [MQTT-4.7.1-2]); a filter starting with a wildcard never matches a topic starting
 * with `$` [MQTT-4.7.2-1]. Empty levels are levels ([MQTT-4.7.1-3]: `a/+` matches `a/`).
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === 36 /* $ */ && (filter.charCodeAt(0) === 43 /* + */ || filter.charCodeAt(0) === 35 /* # */)) {
    return false
  }
  let f = 0
  let t = 0
  const fl = filter.length
  const tl = topic.length
  while (f < fl) {
    const c = filter.charCodeAt(f)
    if (c === 35 /* # */) return true
    if (c === 43 /* + */) {
      // skip one topic level
      while (t < tl && topic.charCodeAt(t) !== 47 /* / */) t++
      f++
    } else {
      // compare one literal level
      while (f < fl && filter.charCodeAt(f) !== 47) {
        if (t >= tl || topic.charCodeAt(t) !== filter.charCodeAt(f)) return false
        f++
        t++
      }
      if (t < tl && topic.charCodeAt(t) !== 47) return false
    }
    // both at a separator or at the end
    if (f < fl) {
      // filter has a separator here
      if (t >= tl) {
        // topic ended: only a trailing "/#" still matches ("a/#" matches "a")
        return filter.charCodeAt(f + 1) === 35 && f + 2 === fl
      }
      f++
      t++
    } else if (t < tl) {
      return false
    }
  }
  return t >= tl
}
