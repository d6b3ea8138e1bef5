// Wall-clock time with sub-millisecond resolution. performance.timeOrigin is per thread, but
// timeOrigin + now() tracks the same wall clock in every thread and process, so send timestamps
// from a device thread and receive timestamps in an observer thread are comparable.
import { performance } from 'node:perf_hooks'

export function now(): number {
  return performance.timeOrigin + performance.now()
}
