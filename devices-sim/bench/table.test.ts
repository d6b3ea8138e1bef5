import { describe, expect, it } from 'vitest'
import { formatTable, median, medians } from './table.js'
import type { RunRecord } from './table.js'

const rec = (broker: string, repetition: number, value: number, error?: string): RunRecord => ({
  scenario: 'fanin-qos0',
  broker,
  repetition,
  metrics: error ? [] : [{ key: 'rate', label: 'msg/s', value, unit: 'msg/s', better: 'higher' }],
  notes: [],
  loadCpuPercent: 50 + repetition,
  ...(error ? { error } : {}),
})

describe('bench table', () => {
  it('takes medians, ignoring failed runs', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([Number.NaN])).toBeNaN()
    const rows = medians([rec('mosquitto', 1, 100), rec('mosquitto', 2, 300), rec('mosquitto', 3, 200), rec('mqlite-memory', 1, 50), rec('mqlite-memory', 2, 0, 'boom')], ['mosquitto', 'mqlite-memory'])
    expect(rows).toHaveLength(1)
    expect(rows[0]!.values).toEqual({ mosquitto: 200, 'mqlite-memory': 50 })
  })

  it('prints ratios against mosquitto', () => {
    const rows = medians([rec('mosquitto', 1, 200_000), rec('mqlite-memory', 1, 100_000)], ['mosquitto', 'mqlite-memory'])
    const table = formatTable(rows, ['mosquitto', 'mqlite-memory'])
    expect(table).toContain('mqlite-memory (x mosquitto)')
    expect(table).toMatch(/fanin-qos0\s+msg\/s ↑\s+200,000\s+100,000 \(0\.50x\)\s+51%/)
  })

  it('a ratio is the median of the ratios repetition by repetition, not the ratio of the medians', () => {
    // repetition 3 is a slow one for mosquitto only: the medians alone would say 0.75x
    const runs = [
      rec('mosquitto', 1, 100),
      rec('mqlite-memory', 1, 110),
      rec('mosquitto', 2, 300),
      rec('mqlite-memory', 2, 320),
      rec('mosquitto', 3, 200),
      rec('mqlite-memory', 3, 150),
      rec('mqlite-sqlite', 1, 0, 'boom'),
    ]
    const rows = medians(runs, ['mosquitto', 'mqlite-memory', 'mqlite-sqlite'])
    expect(rows[0]!.values).toEqual({ mosquitto: 200, 'mqlite-memory': 150, 'mqlite-sqlite': Number.NaN })
    expect(rows[0]!.ratios['mqlite-memory']).toBeCloseTo(320 / 300)
    // no repetition where both measured it: no ratio
    expect(rows[0]!.ratios).not.toHaveProperty('mqlite-sqlite')
    expect(formatTable(rows, ['mosquitto', 'mqlite-memory', 'mqlite-sqlite'])).toMatch(/200\.0\s+150\.0 \(1\.07x\)\s+failed/)
  })

  it('tells a metric a broker does not measure (-) from a failed run', () => {
    const runs = [rec('mosquitto', 1, 200_000), rec('mqlite-memory', 1, 0, 'boom')]
    const rows = medians(runs, ['mosquitto', 'mqlite-memory', 'mqlite-cluster-1'])
    expect(rows[0]!.values).toEqual({ mosquitto: 200_000, 'mqlite-memory': Number.NaN })
    const table = formatTable(rows, ['mosquitto', 'mqlite-memory', 'mqlite-cluster-1'])
    expect(table).toMatch(/200,000\s+failed\s+-\s/)
  })
})
