// Turns raw scenario data (from a file, flags or library callers) into a validated, frozen
// Scenario: zod handles shapes and units, this module the rules that span fields. Every problem
// is collected and reported together, each naming its field path.
import { randomInt } from 'node:crypto'
import { formatPath, formatZodIssues, ScenarioError } from './scenario-error.js'
import { RESERVED_PAYLOAD_FIELDS, scenarioSchema } from './schema.js'
import type { ParsedScenario, PayloadSpec } from './schema.js'
import { placeholdersIn, templateToFilter, topicFilterProblem } from './topics.js'
import { parseDuration, parseFraction } from '../util/units.js'

export type QoS = 0 | 1 | 2

export interface PublishStream {
  topic: string
  intervalMs: number
  jitterMs: number
  qos: QoS
  retain: boolean
  count: number | undefined
  payload: PayloadSpec
}

type ParsedProfile = ParsedScenario['profiles'][number]

export interface Profile {
  name: string
  count: number
  clientId: string
  connectRate: number | undefined
  session: { clean: boolean; expiryMs: number }
  keepalive: number | undefined
  publish: PublishStream[]
  status: NonNullable<ParsedProfile['status']> | undefined
  commands: { topic: string; qos: QoS; delayMs: number } | undefined
  churn: { perMinute: number; offlineMs: number; mode: 'abrupt' | 'graceful' } | undefined
}

export interface Scenario {
  name: string
  broker: Omit<ParsedScenario['broker'], 'connectTimeout' | 'reconnectPeriod'> & {
    connectTimeoutMs: number
    reconnectPeriodMs: number
  }
  seed: number
  durationMs: number | undefined
  graceMs: number
  workers: number | undefined
  observers: { count: number; topics: string[]; shared: string | undefined; qos: QoS }
  commander: { rate: number; timeoutMs: number; qos: QoS } | undefined
  profiles: Profile[]
}

const TOPIC_PLACEHOLDERS = new Set(['deviceId', 'profile', 'index', 'seq', 'run'])
const CLIENT_ID_PLACEHOLDERS = new Set(['profile', 'index', 'run'])
const COMMAND_PLACEHOLDERS = new Set(['deviceId', 'profile', 'index', 'run'])

function checkPlaceholders(template: string, allowed: Set<string>, path: PropertyKey[], problems: string[]): void {
  for (const name of placeholdersIn(template)) {
    if (!allowed.has(name)) problems.push(`${formatPath(path)}: unknown placeholder {${name}} (allowed: ${[...allowed].map((n) => `{${n}}`).join(', ')})`)
  }
}

function resolveJitter(raw: string | number, intervalMs: number): number {
  if (typeof raw === 'string' && raw.trim().endsWith('%')) return parseFraction(raw) * intervalMs
  return parseDuration(raw)
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}

export function resolveScenario(input: unknown, source?: string): Scenario {
  const parsed = scenarioSchema.safeParse(input)
  if (!parsed.success) throw new ScenarioError(formatZodIssues(parsed.error.issues), { source })
  const s = parsed.data
  const problems: string[] = []

  const names = new Set<string>()
  const profiles: Profile[] = s.profiles.map((p, i) => {
    const at = (...rest: PropertyKey[]): PropertyKey[] => ['profiles', i, ...rest]
    const name = p.name ?? `profile${i}`
    if (names.has(name)) problems.push(`${formatPath(at('name'))}: duplicate profile name "${name}"`)
    names.add(name)

    checkPlaceholders(p.clientId, CLIENT_ID_PLACEHOLDERS, at('clientId'), problems)
    if (p.count > 1 && !p.clientId.includes('{index}')) {
      problems.push(`${formatPath(at('clientId'))}: must contain {index} when count > 1, or devices would take over each other's sessions`)
    }

    const streams = Array.isArray(p.publish) ? p.publish : [p.publish]
    if (streams.length > 255) problems.push(`${formatPath(at('publish'))}: at most 255 publish streams per profile`)
    const publish: PublishStream[] = streams.map((stream, j) => {
      const sp = (...rest: PropertyKey[]): PropertyKey[] => (Array.isArray(p.publish) ? at('publish', j, ...rest) : at('publish', ...rest))
      checkPlaceholders(stream.topic, TOPIC_PLACEHOLDERS, sp('topic'), problems)
      if (/[+#]/.test(stream.topic)) problems.push(`${formatPath(sp('topic'))}: a publish topic cannot contain "+" or "#"`)
      if (stream.interval !== undefined && stream.rate !== undefined) problems.push(`${formatPath(sp('rate'))}: set either interval or rate, not both`)
      const intervalMs = stream.interval ?? (stream.rate !== undefined ? 1000 / stream.rate : 1000)
      if (!(intervalMs > 0)) problems.push(`${formatPath(sp('interval'))}: must be greater than 0`)
      let jitterMs = 0
      try {
        jitterMs = resolveJitter(stream.jitter, intervalMs)
        if (jitterMs > intervalMs) problems.push(`${formatPath(sp('jitter'))}: must not exceed the interval (${intervalMs}ms)`)
      } catch (error) {
        problems.push(`${formatPath(sp('jitter'))}: ${(error as Error).message}`)
      }
      if (stream.payload.format === 'json') {
        for (const [field, gen] of Object.entries(stream.payload.fields)) {
          const fp = sp('payload', 'fields', field)
          if ((RESERVED_PAYLOAD_FIELDS as readonly string[]).includes(field)) problems.push(`${formatPath(fp)}: "${field}" is reserved for the measurement envelope`)
          if ((gen.type === 'randomWalk' || gen.type === 'sine') && !(gen.min < gen.max)) problems.push(`${formatPath([...fp, 'max'])}: must be greater than min`)
          if (gen.type === 'randomWalk' && gen.start !== undefined && (gen.start < gen.min || gen.start > gen.max)) problems.push(`${formatPath([...fp, 'start'])}: must be within min..max`)
          if (gen.type === 'counter' && gen.max !== undefined && gen.max < gen.start) problems.push(`${formatPath([...fp, 'max'])}: must be at least start`)
        }
      }
      return { topic: stream.topic, intervalMs, jitterMs, qos: stream.qos, retain: stream.retain, count: stream.count, payload: stream.payload }
    })

    if (p.status) {
      checkPlaceholders(p.status.topic, COMMAND_PLACEHOLDERS, at('status', 'topic'), problems)
      if (/[+#]/.test(p.status.topic)) problems.push(`${formatPath(at('status', 'topic'))}: cannot contain "+" or "#"`)
    }
    if (p.commands) {
      checkPlaceholders(p.commands.topic, COMMAND_PLACEHOLDERS, at('commands', 'topic'), problems)
      if (/[+#]/.test(p.commands.topic)) problems.push(`${formatPath(at('commands', 'topic'))}: cannot contain "+" or "#" (it is the exact topic each device subscribes to)`)
      if (p.count > 1 && !/\{(deviceId|index)\}/.test(p.commands.topic)) problems.push(`${formatPath(at('commands', 'topic'))}: must contain {deviceId} or {index} so each device has its own command topic`)
    }
    if (!p.session.clean && s.broker.protocol === 5 && p.session.expiry === 0) {
      problems.push(`${formatPath(at('session', 'expiry'))}: a persistent MQTT 5 session needs an expiry greater than 0`)
    }

    return {
      name,
      count: p.count,
      clientId: p.clientId,
      connectRate: p.connectRate,
      session: { clean: p.session.clean, expiryMs: p.session.expiry },
      keepalive: p.keepalive,
      publish,
      status: p.status,
      commands: p.commands ? { topic: p.commands.topic, qos: p.commands.qos, delayMs: p.commands.delay } : undefined,
      churn: p.churn ? { perMinute: p.churn.perMinute, offlineMs: p.churn.offline, mode: p.churn.mode } : undefined,
    }
  })

  const allCounted = profiles.every((p) => p.publish.every((stream) => stream.count !== undefined))
  if (s.duration === undefined && !allCounted) problems.push('duration: required unless every publish stream sets count')

  if ((s.broker.cert === undefined) !== (s.broker.key === undefined)) problems.push('broker.key: cert and key must be given together')

  const observerTopics = s.observers.topics ?? [...new Set(profiles.flatMap((p) => p.publish.map((stream) => templateToFilter(stream.topic))))]
  s.observers.topics?.forEach((filter, i) => {
    const problem = topicFilterProblem(filter)
    if (problem) problems.push(`${formatPath(['observers', 'topics', i])}: ${problem}`)
    if (filter.startsWith('$share/')) problems.push(`${formatPath(['observers', 'topics', i])}: use observers.shared for shared subscriptions`)
  })
  const maxQos = Math.max(...profiles.flatMap((p) => p.publish.map((stream) => stream.qos))) as QoS

  if (s.commander && !profiles.some((p) => p.commands)) problems.push('commander: needs at least one profile with commands')

  if (problems.length > 0) throw new ScenarioError(problems, { source })

  return deepFreeze({
    name: s.name,
    broker: {
      url: s.broker.url,
      protocol: s.broker.protocol,
      username: s.broker.username,
      password: s.broker.password,
      ca: s.broker.ca,
      cert: s.broker.cert,
      key: s.broker.key,
      rejectUnauthorized: s.broker.rejectUnauthorized,
      keepalive: s.broker.keepalive,
      connectTimeoutMs: s.broker.connectTimeout,
      reconnectPeriodMs: s.broker.reconnectPeriod,
    },
    // The seed is always recorded in the report, so an unseeded run can still be replayed.
    seed: s.seed ?? randomInt(0, 2 ** 32 - 1),
    durationMs: s.duration,
    graceMs: s.grace,
    workers: s.workers,
    observers: { count: s.observers.count, topics: observerTopics, shared: s.observers.shared, qos: s.observers.qos ?? maxQos },
    commander: s.commander ? { rate: s.commander.rate, timeoutMs: s.commander.timeout, qos: s.commander.qos } : undefined,
    profiles,
  })
}
