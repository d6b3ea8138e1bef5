import { topicMatches } from '../mqtt/topic-match.js'
import { AuthFileError } from './errors.js'

// ACL files in Mosquitto's syntax:
//   # comment
//   topic [read|write|readwrite|deny] <filter>     rules before any `user` line: clients without a user name
//   user <name>                                   the `topic` lines after it belong to that user
//   pattern [read|write|readwrite|deny] <filter>  every client; %u = user name, %c = client id
// The access word is optional (readwrite). A filter may contain spaces when the access word is
// given. With an ACL file everything not granted is denied, and `deny` wins over any grant.

export type Access = 'read' | 'write' | 'readwrite' | 'deny'

export interface AclRule {
  access: Access
  filter: string
}

export interface AclFile {
  /** `topic` rules before the first `user` line */
  anonymous: readonly AclRule[]
  users: ReadonlyMap<string, readonly AclRule[]>
  /** `pattern` rules, with %u / %c still in them */
  patterns: readonly AclRule[]
}

/** The rules that apply to one client, substituted and split by what they grant. */
export interface ClientAcl {
  read: readonly string[]
  write: readonly string[]
  deny: readonly string[]
}

const ACCESS = new Set<string>(['read', 'write', 'readwrite', 'deny'])

/** Parses an ACL file's text; throws one AuthFileError naming every bad line. */
export function parseAcl(text: string, file: string): AclFile {
  const anonymous: AclRule[] = []
  const users = new Map<string, AclRule[]>()
  const patterns: AclRule[] = []
  let current = anonymous
  const problems: string[] = []
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/^\s+/, '').replace(/\s+$/, '')
    if (line === '' || line.startsWith('#')) continue
    const where = `line ${index + 1}`
    const space = line.search(/\s/)
    const keyword = space < 0 ? line : line.slice(0, space)
    const rest = space < 0 ? '' : line.slice(space).replace(/^\s+/, '')
    if (keyword === 'user') {
      if (rest === '') {
        problems.push(`${where}: user needs a name`)
        continue
      }
      current = users.get(rest) ?? []
      users.set(rest, current)
      continue
    }
    if (keyword !== 'topic' && keyword !== 'pattern') {
      problems.push(`${where}: unknown keyword "${keyword}" (expected topic, pattern or user)`)
      continue
    }
    const rule = parseRule(rest)
    const invalid = rule ? filterProblem(rule.filter) : 'needs a topic filter'
    if (invalid || !rule) {
      problems.push(`${where}: ${keyword} ${invalid}`)
      continue
    }
    if (keyword === 'pattern') patterns.push(rule)
    else current.push(rule)
  }
  if (problems.length > 0) throw new AuthFileError(file, problems.join('; '))
  return { anonymous, users, patterns }
}

function parseRule(rest: string): AclRule | undefined {
  const space = rest.search(/\s/)
  const first = space < 0 ? rest : rest.slice(0, space)
  if (ACCESS.has(first) && space >= 0) {
    const filter = rest.slice(space).replace(/^\s+/, '')
    return filter === '' ? undefined : { access: first as Access, filter }
  }
  // `topic read` alone: "read" is the topic (as Mosquitto reads it)
  return rest === '' ? undefined : { access: 'readwrite', filter: rest }
}

/** A filter must be a valid MQTT topic filter: `#` last and alone in its level, `+` alone in its level. */
function filterProblem(filter: string): string | undefined {
  const levels = filter.split('/')
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return `"${filter}": "#" must be the last level on its own`
    if (level.includes('+') && level !== '+') return `"${filter}": "+" must be a level on its own`
  }
  return undefined
}

/**
 * The rules of one client. Patterns are skipped when the value they substitute is missing or
 * contains a wildcard or a level separator (a client id `+` must not turn `dev/%c/#` into
 * `dev/+/#`).
 */
export function rulesFor(acl: AclFile, username: string | undefined, clientId: string): ClientAcl {
  const read: string[] = []
  const write: string[] = []
  const deny: string[] = []
  const add = ({ access, filter }: AclRule): void => {
    if (access === 'deny') deny.push(filter)
    if (access === 'read' || access === 'readwrite') read.push(filter)
    if (access === 'write' || access === 'readwrite') write.push(filter)
  }
  for (const rule of username === undefined ? acl.anonymous : (acl.users.get(username) ?? [])) add(rule)
  for (const rule of acl.patterns) {
    const filter = substitute(rule.filter, username, clientId)
    if (filter !== undefined) add({ access: rule.access, filter })
  }
  return { read, write, deny }
}

function substitute(filter: string, username: string | undefined, clientId: string): string | undefined {
  let out = filter
  if (out.includes('%u')) {
    if (username === undefined || !safeValue(username)) return undefined
    out = out.replaceAll('%u', username)
  }
  if (out.includes('%c')) {
    if (!safeValue(clientId)) return undefined
    out = out.replaceAll('%c', clientId)
  }
  return out
}

function safeValue(value: string): boolean {
  return value.length > 0 && !/[+#/]/.test(value)
}

export function mayPublish(rules: ClientAcl, topic: string): boolean {
  return !rules.deny.some((f) => topicMatches(f, topic)) && rules.write.some((f) => topicMatches(f, topic))
}

export function mayReceive(rules: ClientAcl, topic: string): boolean {
  return !rules.deny.some((f) => topicMatches(f, topic)) && rules.read.some((f) => topicMatches(f, topic))
}

/**
 * A SUBSCRIBE is granted when a read rule covers the whole filter and no deny rule does. A filter
 * that only overlaps a deny rule (`#` vs `deny secret/#`) is granted, and each message on a
 * denied topic is then withheld at delivery (`mayReceive`).
 */
export function maySubscribe(rules: ClientAcl, filter: string): boolean {
  return !rules.deny.some((rule) => covers(rule, filter)) && rules.read.some((rule) => covers(rule, filter))
}

/**
 * Does every topic matching `filter` also match `rule`? Level by level: `#` in the rule covers
 * the rest; `+` covers one level of anything but `#`; a literal covers only itself. A rule that
 * starts with a wildcard does not cover `$` topics [MQTT-4.7.2-1].
 */
export function covers(rule: string, filter: string): boolean {
  if (filter.startsWith('$') && (rule.startsWith('+') || rule.startsWith('#'))) return false
  const r = rule.split('/')
  const f = filter.split('/')
  for (let i = 0; i < r.length; i++) {
    const level = r[i]!
    if (level === '#') return true
    if (i >= f.length) return false
    const sub = f[i]!
    if (sub === '#') return false
    if (level === '+') continue
    if (level !== sub) return false
  }
  // the rule ended: covered only if the filter ended too
  return f.length === r.length
}
