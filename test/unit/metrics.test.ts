import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { validateConfig } from '../../src/config/load.js'
import { allMetricDefinitions } from '../helpers/metric-definitions.js'
import { connectResult, createBrokerStats } from '../../src/metrics/broker-stats.js'
import { histogramSamples } from '../../src/metrics/collected-metric.js'
import { createFastHistogram } from '../../src/metrics/fast-histogram.js'
import { RING_SIZE, createPublishTracker } from '../../src/metrics/publish-tracker.js'
import { createLatencyBatch } from '../../src/metrics/latency-batch.js'

describe('fast histogram', () => {
  it('puts a value equal to a bound in that bucket (le), larger ones in +Inf, and exports cumulative buckets', () => {
    const h = createFastHistogram([1, 5, 10])
    for (const v of [0.5, 1, 3, 10, 11, 1000]) h.observe(v)
    expect([...h.counts]).toEqual([2, 1, 1, 2])
    expect(h.count).toBe(6)
    expect(h.sum).toBe(1025.5)
    const samples = histogramSamples('x', h)
    expect(samples.map((s) => [s.metricName, s.labels?.le, s.value])).toEqual([
      ['x_bucket', '1', 2],
      ['x_bucket', '5', 3],
      ['x_bucket', '10', 4],
      ['x_bucket', '+Inf', 6],
      ['x_sum', undefined, 1025.5],
      ['x_count', undefined, 6],
    ])
  })

  it('puts every value in its bucket whatever came before it (runs, jumps, bounds, +Inf)', () => {
    const bounds = [1, 5, 10]
    const h = createFastHistogram(bounds)
    const candidates = [0, 0.5, 1, 1.5, 5, 5.0001, 9, 10, 10.5, 1e9]
    const expected = [0, 0, 0, 0]
    // every ordered pair of candidates, each value twice in a row: every bucket after every other
    for (const a of candidates) {
      for (const b of candidates) {
        for (const v of [a, a, b, b]) {
          h.observe(v)
          const bucket = bounds.findIndex((bound) => v <= bound)
          expected[bucket === -1 ? bounds.length : bucket]!++
        }
      }
    }
    expect([...h.counts]).toEqual(expected)
    expect(h.count).toBe(4 * candidates.length ** 2)
  })

  it('observes a value many times at once as it would one by one', () => {
    const once = createFastHistogram([1, 5, 10])
    const many = createFastHistogram([1, 5, 10])
    for (const [v, count] of [[3, 4], [0.5, 1], [11, 2], [3, 3]] as const) {
      many.observeMany(v, count)
      for (let i = 0; i < count; i++) once.observe(v)
    }
    expect([...many.counts]).toEqual([...once.counts])
    expect([many.sum, many.count]).toEqual([once.sum, once.count])
  })

  it('refuses bounds that do not ascend', () => {
    expect(() => createFastHistogram([1, 1])).toThrow(/ascend/)
  })
})

describe('publish tracker', () => {
  it('answers for a publish until its ring slot is reused, then forgets it', () => {
    const t = createPublishTracker()
    t.record(7, 100)
    expect(t.receivedAt(7)).toBe(100)
    // a later publish in the same slot
    t.record(7 + RING_SIZE, 200)
    expect(t.receivedAt(7)).toBe(-1)
    expect(t.receivedAt(7 + RING_SIZE)).toBe(200)
  })

  it('knows nothing of a counter it never recorded', () => {
    const t = createPublishTracker()
    expect(t.receivedAt(1)).toBe(-1)
  })
})

describe('latency batch', () => {
  it('observes each copy from its arrival to the clock reading at the flush', () => {
    const h = createFastHistogram([0.001, 0.01, 0.1])
    let clock = 0
    const batch = createLatencyBatch(h, () => clock)
    // two reads' worth of copies (a run each), then a fan-out copy of the first read again
    for (const arrivedAt of [100, 100, 100, 104, 104, 100]) batch.add(arrivedAt)
    expect(h.count).toBe(0)
    clock = 105 // ms
    batch.flush()
    // 5 ms for the four copies that arrived at 100, 1 ms for the two that arrived at 104
    expect([...h.counts]).toEqual([2, 4, 0, 0])
    expect(h.count).toBe(6)
    expect(h.sum).toBeCloseTo(4 * 0.005 + 2 * 0.001, 12)
    batch.flush()
    expect(h.count).toBe(6)
  })

  it('flushes by itself once the turn is over', async () => {
    const h = createFastHistogram([1])
    const batch = createLatencyBatch(h, () => 50)
    batch.add(10)
    batch.add(20)
    expect(h.count).toBe(0)
    await new Promise((resolve) => setImmediate(resolve))
    expect(h.count).toBe(2)
    expect(h.sum).toBeCloseTo(0.04 + 0.03, 12)
  })

  it('observes early, at the time of the overflow, when a turn brings more distinct arrivals than it holds', () => {
    const h = createFastHistogram([1])
    let clock = 0
    const batch = createLatencyBatch(h, () => clock, 2)
    batch.add(1)
    batch.add(2)
    clock = 3
    batch.add(3) // no room: the first two are observed now
    expect(h.count).toBe(2)
    expect(h.sum).toBeCloseTo(0.002 + 0.001, 12)
    clock = 5
    batch.flush()
    expect(h.count).toBe(3)
    expect(h.sum).toBeCloseTo(0.002 + 0.001 + 0.002, 12)
  })
})

describe('broker stats', () => {
  it('maps CONNACK codes of every protocol version to bounded results', () => {
    expect([0, 1, 2, 3, 4, 5, 0x86, 0x87, 0x80, 0x9f].map(connectResult)).toEqual([
      'accepted', 'refused', 'refused', 'refused', 'bad_credentials', 'not_authorized', 'bad_credentials', 'not_authorized', 'refused', 'refused',
    ])
  })

  it('counts drops by reason and ignores an unknown one', () => {
    const stats = createBrokerStats()
    stats.drop('queue_full')
    stats.drop('queue_full', 3)
    stats.drop('expired')
    stats.drop('bogus' as never)
    expect([...stats.dropped]).toEqual([4, 1, 0, 0, 0])
  })

  it('sums the bytes of closed connections and of the sockets still open', () => {
    const stats = createBrokerStats()
    const l = stats.listener('tcp')
    l.closedBytesIn = 100
    l.sockets.add({ bytesRead: 5, bytesWritten: 7 })
    l.sockets.add({})
    expect([stats.bytesIn(l), stats.bytesOut(l)]).toEqual([105, 7])
  })
})

describe('docs/metrics.md', () => {
  it('documents exactly the families the broker serves, with their type and labels', () => {
    const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8')
    const rows = new Map<string, { type: string; labels: string }>()
    for (const m of doc.matchAll(/^\| `(mqlite_[a-z_]+)` \| (\w+) \|([^|]*)\|/gm)) {
      rows.set(m[1]!, { type: m[2]!, labels: m[3]!.replace(/`/g, '').trim() })
    }
    const definitions = allMetricDefinitions()
    expect([...rows.keys()].sort()).toEqual(definitions.map((d) => d.name).sort())
    for (const d of definitions) {
      expect(rows.get(d.name), d.name).toEqual({ type: d.type, labels: d.labelNames.join(', ') })
    }
  })
})

describe('config', () => {
  it('publishes $SYS every 10 s by default; 0 turns it off; negatives are refused', () => {
    expect(validateConfig({}).sys.interval).toBe(10)
    expect(validateConfig({ sys: { interval: 0 } }).sys.interval).toBe(0)
    expect(() => validateConfig({ sys: { interval: -1 } })).toThrow(/sys\.interval/)
  })
})
