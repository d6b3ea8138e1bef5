// the module's binding, not the global `performance` (a lazy getter, called on every read)
import { performance } from 'node:perf_hooks'

/**
 * A token bucket: `burst` tokens at most, refilled at `ratePerSecond`. `take()` spends one token
 * when there is one. Refill is computed lazily from the clock, so an idle bucket costs nothing.
 */
export class TokenBucket {
  readonly #rate: number
  readonly #burst: number
  readonly #now: () => number
  #tokens: number
  #last: number

  constructor(ratePerSecond: number, burst: number, now: () => number = performanceNow) {
    if (!(ratePerSecond > 0)) throw new RangeError('ratePerSecond must be > 0')
    if (!(burst >= 1)) throw new RangeError('burst must be >= 1')
    this.#rate = ratePerSecond / 1000
    this.#burst = burst
    this.#now = now
    this.#tokens = burst
    this.#last = now()
  }

  take(): boolean {
    this.#refill()
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }

  /** True when the bucket has refilled completely: forgetting it changes nothing. */
  isFull(): boolean {
    this.#refill()
    return this.#tokens >= this.#burst
  }

  #refill(): void {
    const now = this.#now()
    const elapsed = now - this.#last
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#rate)
      this.#last = now
    }
  }
}

function performanceNow(): number {
  return performance.now()
}

/** `burst` from the config, or the rate rounded up (at least 1): one second's worth. */
export function burstFor(rate: { perSecond: number; burst?: number | undefined }): number {
  return rate.burst ?? Math.max(1, Math.ceil(rate.perSecond))
}
