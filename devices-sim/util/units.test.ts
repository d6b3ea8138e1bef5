import { describe, expect, it } from 'vitest'
import { fillTemplate, parseDuration, parseFraction, parseRate } from './units.js'

describe('units', () => {
  it('parses durations', () => {
    expect([parseDuration('30s'), parseDuration('250ms'), parseDuration('1.5m'), parseDuration('2h'), parseDuration('5min'), parseDuration(40), parseDuration('40')]).toEqual([
      30_000, 250, 90_000, 7_200_000, 300_000, 40, 40,
    ])
    expect(() => parseDuration('soon')).toThrow(/expected a duration/)
    expect(() => parseDuration(-1)).toThrow()
  })

  it('parses rates', () => {
    expect([parseRate('10/s'), parseRate('30/min'), parseRate('1/5s'), parseRate('3600/h'), parseRate(2), parseRate('2')]).toEqual([10, 0.5, 0.2, 1, 2, 2])
    expect(() => parseRate('0/s')).toThrow()
    expect(() => parseRate('fast')).toThrow(/expected a rate/)
  })

  it('parses fractions', () => {
    expect([parseFraction('5%'), parseFraction(0.25), parseFraction('0.5')]).toEqual([0.05, 0.25, 0.5])
    expect(() => parseFraction('150%')).toThrow()
  })

  it('fills templates and leaves unknown placeholders visible', () => {
    expect(fillTemplate('s/{deviceId}/{seq}/{nope}', { deviceId: 'd1', seq: 4 })).toBe('s/d1/4/{nope}')
  })
})
