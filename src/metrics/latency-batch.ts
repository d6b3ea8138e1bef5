import type { FastHistogram } from './fast-histogram.js'

/**
 * The latencies of the copies handed to connections in one event-loop turn, observed with one
 * clock read when that turn's writes go out. aedes writes each connection's packets once per
 * turn, in the check phase (see the aedes patch), so that is when a copy reaches its socket; a
 * clock read per delivery was the largest single cost of the metrics hooks on the message path.
 * Arrival times are per socket read (instrument-broker), so the copies of one read share one:
 * they are kept as runs of (arrival time, count).
 */
export interface LatencyBatch {
  /** A copy of a message that arrived at `receivedAt` (performance.now() ms) was handed over. */
  add(receivedAt: number): void
  /** Observes the copies added so far, at the clock's current reading. */
  flush(): void
}

/** distinct arrival times kept per turn; more are observed early */
const LATENCY_BATCH_RUNS = 1024

export function createLatencyBatch(histogram: FastHistogram, now: () => number, capacity = LATENCY_BATCH_RUNS): LatencyBatch {
  const arrivals = new Float64Array(capacity)
  const counts = new Float64Array(capacity)
  let runs = 0
  let scheduled = false
  const flush = (): void => {
    if (runs === 0) return
    const at = now()
    for (let i = 0; i < runs; i++) histogram.observeMany((at - arrivals[i]!) / 1000, counts[i]!)
    runs = 0
  }
  const flushScheduled = (): void => {
    scheduled = false
    flush()
  }
  return {
    add(receivedAt) {
      const last = runs - 1
      if (last >= 0 && arrivals[last] === receivedAt) {
        counts[last]!++
        return
      }
      // more distinct arrivals in one turn than there is room for: observe those now
      if (runs === capacity) flush()
      arrivals[runs] = receivedAt
      counts[runs] = 1
      runs++
      if (!scheduled) {
        scheduled = true
        setImmediate(flushScheduled)
      }
    },
    flush,
  }
}
