// Parsers for the human-friendly quantities used in scenario files and flags ("30s", "1/s",
// "5%"). They throw plain Errors with a short reason; callers add the field path.

const DURATION_UNITS_MS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
}

/** "30s", "250ms", "1.5m", "1h" or a bare number of milliseconds -> milliseconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new Error(`expected a non-negative duration, got ${input}`)
    return input
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|m|h)?\s*$/.exec(input)
  if (!match) throw new Error(`expected a duration like 500ms, 30s, 5m or 1h, got "${input}"`)
  const unit = match[2] ?? 'ms'
  const factor = DURATION_UNITS_MS[unit]
  if (factor === undefined) throw new Error(`unknown duration unit "${unit}"`)
  return Number(match[1]) * factor
}

const RATE_PERIOD_MS: Record<string, number> = { s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000 }

/**
 * "10/s", "30/min", "1/5s" (one every five seconds) or a bare number (per second) -> events per
 * second.
 */
export function parseRate(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input <= 0) throw new Error(`expected a positive rate, got ${input}`)
    return input
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(\d+(?:\.\d+)?)?\s*(s|sec|min|m|h))?\s*$/.exec(input)
  if (!match) throw new Error(`expected a rate like 10/s, 30/min or 1/5s, got "${input}"`)
  const count = Number(match[1])
  const periods = match[2] === undefined ? 1 : Number(match[2])
  const periodMs = RATE_PERIOD_MS[match[3] ?? 's']
  if (periodMs === undefined || periods <= 0 || count <= 0) throw new Error(`expected a positive rate, got "${input}"`)
  return count / ((periods * periodMs) / 1000)
}

/** "5%" -> 0.05; a bare number is a fraction already (0.05). */
export function parseFraction(input: string | number): number {
  let value: number
  if (typeof input === 'number') value = input
  else {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(%)?\s*$/.exec(input)
    if (!match) throw new Error(`expected a fraction like 0.1 or 10%, got "${input}"`)
    value = match[2] ? Number(match[1]) / 100 : Number(match[1])
  }
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new Error(`expected a fraction between 0 and 1 (or 0%..100%), got ${String(input)}`)
  return value
}

/** Fills `{name}` placeholders; unknown names are left in place so typos stay visible. */
export function fillTemplate(template: string, values: Readonly<Record<string, string | number>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = values[name]
    return value === undefined ? whole : String(value)
  })
}

export function formatDurationMs(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(0)}us`
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`
  return `${(ms / 60_000).toFixed(1)}m`
}
