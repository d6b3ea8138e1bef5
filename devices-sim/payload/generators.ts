// Value generators for realistic sensor payloads. Each is a small state machine advanced once
// per message; all randomness comes from the per-device seeded Rng, and time-based shapes use
// the nominal publish interval (not the wall clock) so a seed replays exactly.
import type { GeneratorSpec } from '../scenario/schema.js'
import type { Rng } from './rng.js'

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

export interface ValueGenerator {
  next(): JsonValue
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals
  return Math.round(value * factor) / factor
}

const METRES_PER_DEGREE_LAT = 111_320

export function createGenerator(spec: GeneratorSpec, rng: Rng, intervalMs: number): ValueGenerator {
  switch (spec.type) {
    case 'randomWalk': {
      const step = spec.step ?? (spec.max - spec.min) / 100
      let value = spec.start ?? rng.range(spec.min, spec.max)
      return {
        next() {
          const current = round(value, spec.decimals)
          value += rng.range(-step, step)
          // Reflect at the bounds so values do not pile up on the edges.
          if (value > spec.max) value = Math.max(spec.min, 2 * spec.max - value)
          if (value < spec.min) value = Math.min(spec.max, 2 * spec.min - value)
          return current
        },
      }
    }
    case 'sine': {
      const amplitude = (spec.max - spec.min) / 2
      const middle = spec.min + amplitude
      // A random phase per device keeps a fleet from moving in lockstep.
      const phase = rng.range(0, 2 * Math.PI)
      let sample = 0
      return {
        next() {
          const t = sample++ * intervalMs
          const noise = spec.noise > 0 ? spec.noise * rng.normal() : 0
          return round(middle + amplitude * Math.sin((2 * Math.PI * t) / spec.period + phase) + noise, spec.decimals)
        },
      }
    }
    case 'counter': {
      let value = spec.start
      return {
        next() {
          const current = value
          value += spec.step
          if (spec.max !== undefined && value > spec.max) value = spec.start
          return current
        },
      }
    }
    case 'boolean': {
      let value = spec.initial
      return {
        next() {
          const current = value
          if (rng.next() < spec.flip) value = !value
          return current
        },
      }
    }
    case 'gps': {
      let lat = spec.lat
      let lon = spec.lon
      let heading = rng.range(0, 2 * Math.PI)
      const stepMetres = (spec.speed * intervalMs) / 1000
      return {
        next() {
          const current = { lat: round(lat, spec.decimals), lon: round(lon, spec.decimals) }
          const northMetres = (lat - spec.lat) * METRES_PER_DEGREE_LAT
          const eastMetres = (lon - spec.lon) * METRES_PER_DEGREE_LAT * Math.cos((spec.lat * Math.PI) / 180)
          if (Math.hypot(northMetres, eastMetres) > spec.radius) {
            // Head back towards the start, with a little wobble.
            heading = Math.atan2(-eastMetres, -northMetres) + 0.2 * rng.normal()
          } else {
            heading += 0.3 * rng.normal()
          }
          lat += (stepMetres * Math.cos(heading)) / METRES_PER_DEGREE_LAT
          lon += (stepMetres * Math.sin(heading)) / (METRES_PER_DEGREE_LAT * Math.cos((lat * Math.PI) / 180))
          return current
        },
      }
    }
    case 'constant':
      return { next: () => spec.value as JsonValue }
  }
}
