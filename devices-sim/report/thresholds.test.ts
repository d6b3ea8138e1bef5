import { describe, expect, it } from 'vitest'
import type { Report } from './report.js'
import { evaluateThresholds, parseThresholds, ThresholdError } from './thresholds.js'

const latency = { count: 100, min: 0.1, mean: 3, p50: 2, p90: 10, p99: 42, p999: 80, max: 120 }
const report = {
  latencyMs: latency,
  messages: { lost: 2, lossRatio: 0.002, duplicates: 0, unique: 998, outOfOrder: 1, failed: 0, rateIn: 950.5, rateOut: 1000 },
  devices: { connectFailuresTotal: 3, connects: 100, clientErrors: { x: 1 }, connectedPeak: 100, total: 100, connectMs: latency },
  commands: undefined,
  simulator: { cpuPercentOfMachine: 35 },
} as unknown as Report

describe('--assert', () => {
  it('parses units into base units', () => {
    expect(parseThresholds('p99<50ms, loss=0 ,rate>=900, p99.9 <= 0.2s, max<500000us, loss<0.5%, cpu<80%')).toEqual([
      { clause: 'p99<50ms', metric: 'p99', operator: '<', value: 50, percent: false },
      { clause: 'loss=0', metric: 'loss', operator: '=', value: 0, percent: false },
      { clause: 'rate>=900', metric: 'rate', operator: '>=', value: 900, percent: false },
      { clause: 'p99.9 <= 0.2s', metric: 'p99.9', operator: '<=', value: 200, percent: false },
      { clause: 'max<500000us', metric: 'max', operator: '<', value: 500, percent: false },
      { clause: 'loss<0.5%', metric: 'loss', operator: '<', value: 0.005, percent: true },
      { clause: 'cpu<80%', metric: 'cpu', operator: '<', value: 0.8, percent: true },
    ])
  })

  it.each([
    ['', /empty/],
    ['p99<', /cannot parse "p99<"/],
    ['p98<5ms', /unknown metric "p98"/],
    ['p99<5kg', /unknown time unit "kg"/],
    ['loss=0ms', /is a count; unexpected unit "ms"/],
    ['rate>5/min', /unknown rate unit/],
    ['cpu<80', /needs a % value/],
    ['p99<5ms,,loss=0', /empty clause/],
    ['errors<1%', /no percentage form/],
  ])('rejects %j', (text, message) => {
    expect(() => parseThresholds(text)).toThrow(ThresholdError)
    expect(() => parseThresholds(text)).toThrow(message)
  })

  it('evaluates against a report', () => {
    const results = evaluateThresholds(parseThresholds('p99<50ms,loss=0,loss<0.5%,rate>=900,errors=4,ooo!=0,cpu<30%,p50==2'), report)
    expect(results.map((r) => [r.clause, r.ok])).toEqual([
      ['p99<50ms', true],
      ['loss=0', false],
      ['loss<0.5%', true],
      ['rate>=900', true],
      ['errors=4', true],
      ['ooo!=0', true],
      ['cpu<30%', false],
      ['p50==2', true],
    ])
    expect(results[1]!.actual).toBe(2)
  })
})
