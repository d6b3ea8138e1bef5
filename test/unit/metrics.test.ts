import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { validateConfig } from '../../src/config/load.js'
import { allMetricDefinitions } from '../helpers/metric-definitions.js'
import { connectResult, createBrokerStats } from '../../src/metrics/broker-stats.js'
import { histogramSamples } from '../../src/metrics/collected-metric.js'
import { createFastHistogram } from '../../src/metrics/fast-histogram.js'
import { RING_SIZE, createPublishTracker } from '../../src/metrics/publish-tracker.js'

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

  it('refuses bounds that do not ascend', () => {
    expect(() => createFastHistogram([1, 1])).toThrow(/ascend/)
  })
})

describe('publish tracker', () => {
  it('answers for a publish until its ring slot is reused, then forgets it', () => {
    const t = createPublishTracker()
    t.record(7, 100)
    expect(t.matched(7)).toBe(false)
    expect(t.ageMs(7, 150)).toBe(50)
    t.markMatched(7)
    expect(t.matched(7)).toBe(true)
    // a later publish in the same slot
    t.record(7 + RING_SIZE, 200)
    expect(t.matched(7)).toBeUndefined()
    expect(t.ageMs(7, 250)).toBe(-1)
    // marking a forgotten publish does not touch the new one
    t.markMatched(7)
    expect(t.matched(7 + RING_SIZE)).toBe(false)
  })

  it('knows nothing of a counter it never recorded', () => {
    const t = createPublishTracker()
    expect(t.matched(1)).toBeUndefined()
    expect(t.ageMs(1, 1)).toBe(-1)
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
