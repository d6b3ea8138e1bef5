// Topic helpers: filter validation and matching (used to decide which published messages the
// observers are expected to see) and turning a topic template into a subscription filter.

const SHARE_PREFIX = /^\$share\/[^/]+\//

export function stripSharePrefix(filter: string): string {
  return filter.replace(SHARE_PREFIX, '')
}

/** Returns a reason when `filter` is not a valid MQTT topic filter [MQTT-4.7.1-2], [MQTT-4.7.1-3]. */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'empty topic filter'
  const levels = stripSharePrefix(filter).split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return `"#" must be a whole last level in "${filter}"`
    if (level.includes('+') && level !== '+') return `"+" must be a whole level in "${filter}"`
  }
  return undefined
}

/** MQTT matching; "$"-topics are not matched by leading wildcards [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = stripSharePrefix(filter).split('/')
  const t = topic.split('/')
  if (t[0]?.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

/** "sensors/{deviceId}/temp" -> "sensors/+/temp"; a level holding any placeholder becomes "+". */
export function templateToFilter(template: string): string {
  return template
    .split('/')
    .map((level) => (/\{\w+\}/.test(level) ? '+' : level))
    .join('/')
}

export function placeholdersIn(template: string): string[] {
  return [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string)
}
