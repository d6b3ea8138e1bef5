import type { FastHistogram } from './fast-histogram.js'

export type MetricType = 'counter' | 'gauge' | 'histogram'

export interface Sample {
  value: number
  labels?: Record<string, string>
  /** for histogram series: `<name>_bucket`, `<name>_sum`, `<name>_count` */
  metricName?: string
}

/** One family as documented: the table in docs/metrics.md is checked against these. */
export interface MetricDefinition {
  name: string
  type: MetricType
  labelNames: readonly string[]
  help: string
  read(): Sample[]
}

/**
 * A family whose samples are computed when Prometheus scrapes, in the shape prom-client's
 * Registry formats (`get()`), so the broker's counters stay plain numbers in between.
 */
export interface CollectedMetric {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  readonly aggregator: 'sum'
  get(): Promise<{ name: string; help: string; type: MetricType; values: Sample[]; aggregator: 'sum' }>
  /** The values are owned by the broker's counters; prom-client's reset has nothing to clear. */
  reset(): void
}

export function collectedMetric(definition: MetricDefinition): CollectedMetric {
  const { name, help, type } = definition
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, values: definition.read(), aggregator: 'sum' }),
    reset: () => {},
  }
}

/** The cumulative `_bucket`, `_sum` and `_count` series of a histogram. */
export function histogramSamples(name: string, histogram: FastHistogram): Sample[] {
  const samples: Sample[] = []
  let cumulative = 0
  histogram.bounds.forEach((bound, i) => {
    cumulative += histogram.counts[i]!
    samples.push({ metricName: `${name}_bucket`, labels: { le: String(bound) }, value: cumulative })
  })
  cumulative += histogram.counts[histogram.bounds.length]!
  samples.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' }, value: cumulative })
  samples.push({ metricName: `${name}_sum`, value: histogram.sum })
  samples.push({ metricName: `${name}_count`, value: histogram.count })
  return samples
}
