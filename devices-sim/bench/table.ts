// Medians across repetitions and the side-by-side table with ratios against Mosquitto. A ratio is
// the median of the ratios of each repetition, whose brokers run back to back: on a shared host a
// ratio of two medians can pair one broker's fast repetition with the other's slow one.
import type { Metric } from './scenarios.js'

export interface RunRecord {
  scenario: string
  broker: string
  repetition: number
  metrics: Metric[]
  notes: string[]
  loadCpuPercent: number
  error?: string
}

export interface MedianRow {
  scenario: string
  key: string
  label: string
  better: 'higher' | 'lower'
  /** broker -> median value (NaN when every run failed; absent when the broker does not measure it) */
  values: Record<string, number>
  /** broker -> median load-generator CPU, % of one core */
  loadCpu: Record<string, number>
  /** broker -> median of its ratios to the baseline, repetition by repetition (where both measured it) */
  ratios: Record<string, number>
}

export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export function medians(records: readonly RunRecord[], brokers: readonly string[], baseline = 'mosquitto'): MedianRow[] {
  const rows: MedianRow[] = []
  const scenarios = [...new Set(records.map((r) => r.scenario))]
  for (const scenario of scenarios) {
    const ofScenario = records.filter((r) => r.scenario === scenario)
    const metricDefs = new Map<string, Metric>()
    for (const r of ofScenario) for (const m of r.metrics) if (!metricDefs.has(m.key)) metricDefs.set(m.key, m)
    for (const def of metricDefs.values()) {
      const values: Record<string, number> = {}
      const loadCpu: Record<string, number> = {}
      const ratios: Record<string, number> = {}
      const valueOf = (r: RunRecord) => r.metrics.find((m) => m.key === def.key)?.value ?? Number.NaN
      const baselineByRepetition = new Map(ofScenario.filter((r) => r.broker === baseline).map((r) => [r.repetition, valueOf(r)]))
      for (const broker of brokers) {
        const runs = ofScenario.filter((r) => r.broker === broker)
        // not run here (a cluster target skips single-broker scenarios) or not a metric it has
        // (Redis commands on a broker without Redis): absent, not failed
        const measured = runs.some((r) => r.error !== undefined || r.metrics.some((m) => m.key === def.key))
        if (!measured) continue
        values[broker] = median(runs.map(valueOf))
        loadCpu[broker] = median(runs.filter((r) => !r.error).map((r) => r.loadCpuPercent))
        if (broker === baseline) continue
        const paired = runs.map((r) => valueOf(r) / (baselineByRepetition.get(r.repetition) ?? Number.NaN))
        const ratio = median(paired.filter((x) => Number.isFinite(x)))
        if (Number.isFinite(ratio)) ratios[broker] = ratio
      }
      rows.push({ scenario, key: def.key, label: def.label, better: def.better, values, loadCpu, ratios })
    }
  }
  return rows
}

function formatValue(value: number): string {
  if (!Number.isFinite(value)) return 'failed'
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US')
  if (Math.abs(value) >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

export function formatTable(rows: readonly MedianRow[], brokers: readonly string[], baseline = 'mosquitto'): string {
  const hasBaseline = brokers.includes(baseline)
  const header = ['scenario', 'metric', ...brokers.map((b) => (hasBaseline && b !== baseline ? `${b} (x ${baseline})` : b)), 'load cpu']
  const body = rows.map((row) => {
    const cells = brokers.map((b) => {
      if (!(b in row.values)) return '-'
      const v = row.values[b] ?? Number.NaN
      const ratio = row.ratios[b]
      if (!hasBaseline || b === baseline || ratio === undefined || !Number.isFinite(v)) return formatValue(v)
      return `${formatValue(v)} (${ratio.toFixed(2)}x)`
    })
    const cpu = Math.max(...brokers.map((b) => row.loadCpu[b] ?? 0).filter(Number.isFinite))
    return [row.scenario, `${row.label} ${row.better === 'higher' ? '↑' : '↓'}`, ...cells, Number.isFinite(cpu) ? `${Math.round(cpu)}%` : '-']
  })
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n')
}
