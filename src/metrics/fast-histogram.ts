/**
 * A fixed-bucket histogram that costs a few array writes per observation. prom-client's own
 * `observe()` hashes the label set and allocates on every call, which is too much for a value
 * recorded for every delivered message; this one is read by the registry only when scraped.
 */
export interface FastHistogram {
  /** upper bounds, ascending; the +Inf bucket is implicit */
  readonly bounds: readonly number[]
  /** per-bucket (not cumulative) counts; the last slot is the +Inf bucket */
  readonly counts: Float64Array
  readonly sum: number
  readonly count: number
  observe(value: number): void
  /** `count` observations of the same value */
  observeMany(value: number, count: number): void
}

export function createFastHistogram(bounds: readonly number[]): FastHistogram {
  for (let i = 1; i < bounds.length; i++) {
    if (!(bounds[i]! > bounds[i - 1]!)) throw new Error(`histogram bounds must ascend: ${bounds.join(', ')}`)
  }
  const upper = Float64Array.from(bounds)
  const counts = new Float64Array(bounds.length + 1)
  // sum and count in a typed array: a fractional number kept in a closure variable is boxed, and
  // each update of it would allocate
  const totals = new Float64Array(2)
  const n = upper.length
  let lastIndex = 0
  const bucketOf = (value: number): number => {
    let i = lastIndex
    // Values come in runs: the copies of one message to many subscribers have the same, and
    // consecutive messages mostly land in the bucket of the one before. That bucket is tried
    // first; only a value outside it is searched for.
    if (!(i < n && value <= upper[i]! && (i === 0 || value > upper[i - 1]!))) {
      // A linear scan: the bucket lists are short and most values land in the first few.
      i = 0
      while (i < n && value > upper[i]!) i++
      lastIndex = i
    }
    return i
  }
  return {
    bounds,
    counts,
    get sum() {
      return totals[0]!
    },
    get count() {
      return totals[1]!
    },
    observe(value: number): void {
      counts[bucketOf(value)]!++
      totals[0]! += value
      totals[1]!++
    },
    observeMany(value: number, count: number): void {
      counts[bucketOf(value)]! += count
      totals[0]! += value * count
      totals[1]! += count
    },
  }
}

/** Bucket bounds in seconds for in-broker latencies: 50 µs to 10 s. */
export const LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
] as const

/** Bucket bounds for store commit batch sizes (writes per commit). */
export const BATCH_SIZE_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] as const
