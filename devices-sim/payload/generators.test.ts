import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { readEnvelope } from './envelope.js'
import { createGenerator } from './generators.js'
import { createPayloadBuilder } from './payload-builder.js'
import { createRng, deriveSeed } from './rng.js'
import { generatorSchema } from '../scenario/schema.js'

const spec = (input: unknown) => generatorSchema.parse(input)
const take = (gen: { next(): unknown }, n: number): unknown[] => Array.from({ length: n }, () => gen.next())

const ALL = [
  { type: 'randomWalk', min: 0, max: 10 },
  { type: 'sine', min: -5, max: 5, period: '10s', noise: 0.3 },
  { type: 'counter', start: 3, step: 2, max: 9 },
  { type: 'boolean', flip: 0.3 },
  { type: 'gps', lat: 48.85, lon: 2.35, speed: 15, radius: 200 },
]

describe('generators', () => {
  it.each(ALL)('$type replays exactly with the same seed and differs with another', (input) => {
    const a = take(createGenerator(spec(input), createRng(42), 1000), 50)
    const b = take(createGenerator(spec(input), createRng(42), 1000), 50)
    expect(a).toEqual(b)
    if (input.type !== 'counter') expect(take(createGenerator(spec(input), createRng(43), 1000), 50)).not.toEqual(a)
  })

  it('randomWalk stays within its bounds for any seed and range', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.double({ min: -1000, max: 1000, noNaN: true }), fc.double({ min: 0.01, max: 500, noNaN: true }), (seed, min, width) => {
        const g = createGenerator(spec({ type: 'randomWalk', min, max: min + width, step: width / 3, decimals: 6 }), createRng(seed), 1000)
        for (const v of take(g, 200) as number[]) {
          expect(v).toBeGreaterThanOrEqual(min - 1e-6)
          expect(v).toBeLessThanOrEqual(min + width + 1e-6)
        }
      }),
      { numRuns: 100 },
    )
  })

  it('counter counts and wraps', () => {
    expect(take(createGenerator(spec({ type: 'counter', start: 3, step: 2, max: 9 }), createRng(1), 1000), 6)).toEqual([3, 5, 7, 9, 3, 5])
  })

  it('sine without noise follows the curve within min..max', () => {
    const values = take(createGenerator(spec({ type: 'sine', min: 10, max: 20, period: '4s' }), createRng(5), 1000), 8) as number[]
    for (const v of values) {
      expect(v).toBeGreaterThanOrEqual(10)
      expect(v).toBeLessThanOrEqual(20)
    }
    // Sampled every quarter period: opposite samples mirror around the middle.
    expect(values[0]! + values[2]!).toBeCloseTo(30, 1)
    expect(values[4]).toBeCloseTo(values[0]!, 1)
  })

  it('gps tracks stay near the radius around the start', () => {
    const g = createGenerator(spec({ type: 'gps', lat: 48.85, lon: 2.35, speed: 20, radius: 300 }), createRng(9), 1000)
    const points = take(g, 2000) as Array<{ lat: number; lon: number }>
    const moved = points.some((p) => p.lat !== 48.85 || p.lon !== 2.35)
    expect(moved).toBe(true)
    for (const p of points) {
      const north = (p.lat - 48.85) * 111_320
      const east = (p.lon - 2.35) * 111_320 * Math.cos((48.85 * Math.PI) / 180)
      // One step past the radius at most before turning back, plus wobble.
      expect(Math.hypot(north, east)).toBeLessThan(300 + 3 * 20)
    }
  })

  it('derives distinct, stable per-device seeds', () => {
    expect(deriveSeed(1, 'payload', 'p', 0)).toBe(deriveSeed(1, 'payload', 'p', 0))
    expect(deriveSeed(1, 'payload', 'p', 0)).not.toBe(deriveSeed(1, 'payload', 'p', 1))
    expect(deriveSeed(1, 'payload', 'p', 0)).not.toBe(deriveSeed(2, 'payload', 'p', 0))
  })
})

describe('payload builder', () => {
  const ctx = (seed: number) => ({ run: 77, deviceId: 'dev-1', profile: 'p', stream: 2, intervalMs: 1000, rng: createRng(seed) })

  it('JSON payloads carry the envelope and deterministic fields', () => {
    const fields = { t: spec({ type: 'randomWalk', min: 0, max: 1 }), on: spec({ type: 'boolean' }) }
    const a = createPayloadBuilder({ format: 'json', fields }, ctx(3))
    const b = createPayloadBuilder({ format: 'json', fields }, ctx(3))
    const first = JSON.parse(String(a(1, 1000.5)))
    expect(first).toMatchObject({ deviceId: 'dev-1', profile: 'p', stream: 2, seq: 1, ts: 1000.5, run: 77 })
    expect(String(b(1, 1000.5))).toBe(String(createPayloadBuilder({ format: 'json', fields }, ctx(3))(1, 1000.5)))
    expect(readEnvelope(Buffer.from(String(a(2, 2000))))).toEqual({ run: 77, deviceId: 'dev-1', stream: 2, seq: 2, ts: 2000 })
  })

  it('binary payloads have the fixed size and a readable header', () => {
    const build = createPayloadBuilder({ format: 'binary', size: 64 }, ctx(3))
    const p = build(4_000_000_000, 1712345678901.25) as Buffer
    expect(p.length).toBe(64)
    expect(readEnvelope(p)).toEqual({ run: 77, deviceId: 'dev-1', stream: 2, seq: 4_000_000_000, ts: 1712345678901.25 })
    expect(Buffer.compare(p.subarray(29), (createPayloadBuilder({ format: 'binary', size: 64 }, ctx(3))(1, 0) as Buffer).subarray(29))).toBe(0)
  })

  it('rejects a binary size too small for the device id', () => {
    expect(() => createPayloadBuilder({ format: 'binary', size: 32 }, { ...ctx(1), deviceId: 'a-rather-long-device-id' })).toThrow(/too small/)
  })

  it('treats other payloads as foreign', () => {
    expect(readEnvelope(Buffer.from('hello'))).toBeUndefined()
    expect(readEnvelope(Buffer.from('{"deviceId":"x","seq":1}'))).toBeUndefined()
    expect(readEnvelope(Buffer.from('{not json'))).toBeUndefined()
  })
})
