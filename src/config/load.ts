import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { parse as parseYaml } from 'yaml'
import type { z } from 'zod'
import { ConfigError } from '../errors.js'
import { configSchema, type Config } from './schema.js'

export const ENV_PREFIX = 'MQLITE_'

type Plain = Record<string, unknown>

/** Sources in increasing precedence: file < environment < command-line flags. */
export interface ConfigSources {
  file?: string
  env?: NodeJS.ProcessEnv
  flags?: Plain
  /** `--host`/`--port`: applied to the first listener of whatever the other sources define. */
  firstListener?: { host?: string; port?: number }
}

/** Reads, merges and validates every source; throws one ConfigError listing every problem. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const problems: string[] = []
  const fromFile = sources.file ? readConfigFile(sources.file, problems) : {}
  const fromEnv = sources.env ? configFromEnv(sources.env, problems) : {}
  if (problems.length > 0) throw new ConfigError(problems)
  const merged = deepMerge(deepMerge(fromFile, fromEnv), sources.flags ?? {})
  const { host, port } = sources.firstListener ?? {}
  if (host !== undefined || port !== undefined) {
    const listeners = Array.isArray(merged.listeners) ? [...(merged.listeners as unknown[])] : [{ type: 'tcp' }]
    const first = isPlainObject(listeners[0]) ? listeners[0] : { type: 'tcp' }
    listeners[0] = { ...first, ...(host !== undefined && { host }), ...(port !== undefined && { port }) }
    merged.listeners = listeners
  }
  return validateConfig(merged)
}

/** Validates a config object (as the programmatic API receives it) and freezes the result. */
export function validateConfig(input: unknown): Config {
  const result = configSchema.safeParse(input ?? {})
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue))
  return deepFreeze(result.data)
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')
  const key = path.replace(/^\./, '') || '(root)'
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `${key === '(root)' ? '' : `${key}.`}${k}: unknown key`).join('; ')
  }
  return `${key}: ${issue.message}`
}

function readConfigFile(file: string, problems: string[]): Plain {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    problems.push(`config file ${file}: cannot be read (${(err as Error).message})`)
    return {}
  }
  try {
    const parsed: unknown = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text)
    if (parsed === null || parsed === undefined) return {}
    if (!isPlainObject(parsed)) {
      problems.push(`config file ${file}: must contain a mapping of keys`)
      return {}
    }
    return parsed
  } catch (err) {
    problems.push(`config file ${file}: ${(err as Error).message}`)
    return {}
  }
}

/**
 * `MQLITE_STORE__SYNCHRONOUS=full` sets `store.synchronous`: `__` separates levels and
 * UPPER_SNAKE becomes camelCase. Values are read as JSON when they parse (numbers, booleans,
 * the `MQLITE_LISTENERS` array), else as strings. `MQLITE_CONFIG` names the config file.
 */
export function configFromEnv(env: NodeJS.ProcessEnv, problems: string[] = []): Plain {
  const out: Plain = {}
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined || name === `${ENV_PREFIX}CONFIG`) continue
    const path = name
      .slice(ENV_PREFIX.length)
      .split('__')
      .map((part) => part.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()))
    if (path.some((p) => p.length === 0)) {
      problems.push(`${name}: not a configuration key`)
      continue
    }
    setPath(out, path, parseScalar(raw))
  }
  return out
}

/** `--set store.synchronous=full` style assignments. */
export function parseAssignment(assignment: string): { path: string[]; value: unknown } {
  const eq = assignment.indexOf('=')
  if (eq <= 0) throw new ConfigError([`--set ${assignment}: expected key.path=value`])
  return { path: assignment.slice(0, eq).split('.'), value: parseScalar(assignment.slice(eq + 1)) }
}

export function setPath(target: Plain, path: readonly string[], value: unknown): void {
  let node = target
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      node[key] = value
      return
    }
    const next = node[key]
    if (!isPlainObject(next)) node[key] = {}
    node = node[key] as Plain
  }
}

function parseScalar(raw: string): unknown {
  try {
    return JSON.parse(raw)
  } catch {
    return raw
  }
}

/** Objects merge key by key; anything else (arrays included) is replaced by the later source. */
export function deepMerge(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base }
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key]
    out[key] = isPlainObject(prev) && isPlainObject(value) ? deepMerge(prev, value) : value
  }
  return out
}

function isPlainObject(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}
