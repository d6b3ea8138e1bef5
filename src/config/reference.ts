import { z } from 'zod'
import { ENV_PREFIX } from './load.js'
import { configSchema } from './schema.js'

export interface ConfigKey {
  key: string
  env: string
  type: string
  default: string
  description: string
}

interface JsonSchema {
  type?: string | string[]
  enum?: unknown[]
  default?: unknown
  description?: string
  properties?: Record<string, JsonSchema>
  items?: JsonSchema
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  const?: unknown
}

/** Every configuration key with its environment variable, type, default and meaning. */
export function configReference(): ConfigKey[] {
  const root = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema
  const keys: ConfigKey[] = []
  walk(root, [], keys)
  return keys
}

function walk(schema: JsonSchema, path: string[], out: ConfigKey[]): void {
  if (schema.properties && path.length < 3) {
    for (const [name, child] of Object.entries(schema.properties)) walk(child, [...path, name], out)
    return
  }
  out.push(describeKey(schema, path))
  // A list of tagged objects (the listeners): document each variant's fields too.
  for (const variant of schema.items?.oneOf ?? schema.items?.anyOf ?? []) {
    const tag = variant.properties?.type?.enum?.[0] ?? variant.properties?.type?.const
    for (const [name, child] of Object.entries(variant.properties ?? {})) {
      if (name === 'type') continue
      walk(child, [...path.slice(0, -1), `${path.at(-1)}[type=${String(tag)}]`, name], out)
    }
  }
}

function describeKey(schema: JsonSchema, path: string[]): ConfigKey {
  return {
    key: path.join('.'),
    // per-listener fields have no variable of their own: MQLITE_LISTENERS takes the whole list as JSON
    env: path.some((p) => p.includes('['))
      ? ''
      : ENV_PREFIX + path.map((p) => p.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()).join('__'),
    type: describeType(schema),
    default: schema.default === undefined ? '' : JSON.stringify(schema.default),
    description: schema.description ?? '',
  }
}

function describeType(schema: JsonSchema): string {
  if (schema.enum) return schema.enum.map(String).join('|')
  if (schema.type === 'array') return 'list'
  if (Array.isArray(schema.type)) return schema.type.join('|')
  return schema.type ?? 'value'
}

/** The key reference as plain text for `mqlite --help`. */
export function formatConfigReference(): string {
  const lines = configReference().map((k) => {
    const def = k.default ? ` (default ${k.default})` : ''
    const env = k.env ? `\n      env: ${k.env}` : ''
    return `  ${k.key}  [${k.type}]${def}\n      ${k.description}${env}`
  })
  return lines.join('\n')
}
