// --assert 'p99<50ms,loss=0,rate>=900': thresholds checked against a report, for CI exit codes.
import type { AssertionResult, Report } from './report.js'

export type Operator = '<' | '<=' | '>' | '>=' | '=' | '!='

export interface Threshold {
  clause: string
  metric: string
  operator: Operator
  /** In the metric's base unit (ms for times, a count, a fraction for "%" forms, msgs/s for rates). */
  value: number
  percent: boolean
}

export class ThresholdError extends Error {
  readonly code = 'ASSERT_INVALID'
  constructor(message: string) {
    super(message)
    this.name = 'ThresholdError'
  }
}

type Kind = 'time' | 'count' | 'rate' | 'percent'

interface MetricDef {
  kind: Kind
  /** Value read from the report; for counts with a "%" threshold, `ratio` is used instead. */
  read(report: Report): number
  ratio?(report: Report): number
}

const lat = (pick: (r: Report) => number): MetricDef => ({ kind: 'time', read: pick })
const safeRatio = (part: number, whole: number): number => (whole === 0 ? 0 : part / whole)

const METRICS: Record<string, MetricDef> = {
  p50: lat((r) => r.latencyMs.p50),
  p90: lat((r) => r.latencyMs.p90),
  p99: lat((r) => r.latencyMs.p99),
  'p99.9': lat((r) => r.latencyMs.p999),
  p999: lat((r) => r.latencyMs.p999),
  max: lat((r) => r.latencyMs.max),
  mean: lat((r) => r.latencyMs.mean),
  loss: { kind: 'count', read: (r) => r.messages.lost, ratio: (r) => r.messages.lossRatio },
  duplicates: { kind: 'count', read: (r) => r.messages.duplicates, ratio: (r) => safeRatio(r.messages.duplicates, r.messages.unique) },
  dup: { kind: 'count', read: (r) => r.messages.duplicates, ratio: (r) => safeRatio(r.messages.duplicates, r.messages.unique) },
  ooo: { kind: 'count', read: (r) => r.messages.outOfOrder, ratio: (r) => safeRatio(r.messages.outOfOrder, r.messages.unique) },
  outOfOrder: { kind: 'count', read: (r) => r.messages.outOfOrder, ratio: (r) => safeRatio(r.messages.outOfOrder, r.messages.unique) },
  errors: {
    kind: 'count',
    read: (r) => r.devices.connectFailuresTotal + r.messages.failed + Object.values(r.devices.clientErrors).reduce((a, b) => a + b, 0),
  },
  connectFailures: { kind: 'count', read: (r) => r.devices.connectFailuresTotal, ratio: (r) => safeRatio(r.devices.connectFailuresTotal, r.devices.connects + r.devices.connectFailuresTotal) },
  connected: { kind: 'count', read: (r) => r.devices.connectedPeak, ratio: (r) => safeRatio(r.devices.connectedPeak, r.devices.total) },
  received: { kind: 'count', read: (r) => r.messages.unique },
  sent: { kind: 'count', read: (r) => r.messages.sent },
  rate: { kind: 'rate', read: (r) => r.messages.rateIn },
  rateIn: { kind: 'rate', read: (r) => r.messages.rateIn },
  rateOut: { kind: 'rate', read: (r) => r.messages.rateOut },
  connectP99: lat((r) => r.devices.connectMs.p99),
  cmdP99: lat((r) => r.commands?.latencyMs.p99 ?? 0),
  cmdTimeouts: { kind: 'count', read: (r) => r.commands?.timedOut ?? 0, ratio: (r) => safeRatio(r.commands?.timedOut ?? 0, r.commands?.sent ?? 0) },
  cpu: { kind: 'percent', read: (r) => r.simulator.cpuPercentOfMachine / 100 },
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000 }
const CLAUSE = /^\s*([A-Za-z][\w.]*)\s*(<=|>=|==|!=|<|>|=)\s*(-?\d+(?:\.\d+)?)\s*([a-z%/]*)\s*$/

export function parseThresholds(text: string): Threshold[] {
  const clauses = text.split(',').map((c) => c.trim())
  if (clauses.length === 0 || clauses.every((c) => c === '')) throw new ThresholdError('--assert: empty expression')
  return clauses.map((clause) => {
    if (clause === '') throw new ThresholdError(`--assert: empty clause in "${text}"`)
    const match = CLAUSE.exec(clause)
    if (!match) throw new ThresholdError(`--assert: cannot parse "${clause}" (expected <metric><op><value>, e.g. p99<50ms)`)
    const [, metric = '', op = '', raw = '', unit = ''] = match
    const def = METRICS[metric]
    if (!def) throw new ThresholdError(`--assert: unknown metric "${metric}" in "${clause}" (known: ${Object.keys(METRICS).join(', ')})`)
    const operator = (op === '==' ? '=' : op) as Operator
    let value = Number(raw)
    let percent = false
    if (unit === '%') {
      if (def.kind !== 'percent' && !def.ratio) throw new ThresholdError(`--assert: "${metric}" has no percentage form in "${clause}"`)
      value /= 100
      percent = true
    } else if (def.kind === 'time') {
      const factor = TIME_UNITS[unit === '' ? 'ms' : unit]
      if (factor === undefined) throw new ThresholdError(`--assert: unknown time unit "${unit}" in "${clause}" (use us, ms or s)`)
      value *= factor
    } else if (def.kind === 'rate') {
      if (unit !== '' && unit !== '/s') throw new ThresholdError(`--assert: unknown rate unit "${unit}" in "${clause}" (use /s or nothing)`)
    } else if (def.kind === 'percent') {
      throw new ThresholdError(`--assert: "${metric}" needs a % value in "${clause}"`)
    } else if (unit !== '') {
      throw new ThresholdError(`--assert: "${metric}" is a count; unexpected unit "${unit}" in "${clause}"`)
    }
    return { clause, metric, operator, value, percent }
  })
}

function compare(actual: number, operator: Operator, expected: number): boolean {
  switch (operator) {
    case '<':
      return actual < expected
    case '<=':
      return actual <= expected
    case '>':
      return actual > expected
    case '>=':
      return actual >= expected
    case '=':
      return Math.abs(actual - expected) < 1e-9
    case '!=':
      return Math.abs(actual - expected) >= 1e-9
  }
}

export function evaluateThresholds(thresholds: readonly Threshold[], report: Report): AssertionResult[] {
  return thresholds.map((t) => {
    const def = METRICS[t.metric] as MetricDef
    const actual = t.percent && def.ratio ? def.ratio(report) : def.read(report)
    return { clause: t.clause, actual, ok: compare(actual, t.operator, t.value) }
  })
}
