// Seeded pseudo-random numbers so a scenario replays the same payload values with the same
// --seed, independent of how devices are spread across workers.

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform in [min, max). */
  range(min: number, max: number): number
  /** Standard normal (Box-Muller). */
  normal(): number
  int(maxExclusive: number): number
}

/** 32-bit FNV-1a, used to derive per-device seeds from the run seed and a name. */
export function hashString(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h >>> 0
}

export function deriveSeed(seed: number, ...parts: Array<string | number>): number {
  return hashString(parts.join('\u0000'), (seed ^ 0x9e3779b9) >>> 0)
}

/** mulberry32: tiny, fast, and good enough for sensor noise (not for cryptography). */
export function createRng(seed: number): Rng {
  let state = seed >>> 0
  let spareNormal: number | undefined
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    range: (min, max) => min + (max - min) * next(),
    int: (maxExclusive) => Math.floor(next() * maxExclusive),
    normal: () => {
      if (spareNormal !== undefined) {
        const value = spareNormal
        spareNormal = undefined
        return value
      }
      // 1 - next() keeps u away from 0 so log() stays finite.
      const u = 1 - next()
      const v = next()
      const radius = Math.sqrt(-2 * Math.log(u))
      spareNormal = radius * Math.sin(2 * Math.PI * v)
      return radius * Math.cos(2 * Math.PI * v)
    },
  }
}
