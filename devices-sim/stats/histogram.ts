// Latency histograms: values recorded in microseconds (integers, as HdrHistogram wants), reported
// in milliseconds. Workers ship histograms to the coordinator in HdrHistogram's compressed
// encoding, which merges losslessly.
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64 } from 'hdr-histogram-js'
import type { Histogram } from 'hdr-histogram-js'

export type { Histogram }

export interface LatencySummary {
  count: number
  min: number
  mean: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

export function createHistogram(): Histogram {
  // One hour in microseconds; autoResize keeps the rare outlier instead of throwing.
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: true })
}

export function recordMs(histogram: Histogram, ms: number): void {
  // Clock skew between threads can make a tiny latency negative; clamp rather than drop it.
  histogram.recordValue(Math.max(0, Math.round(ms * 1000)))
}

export function encodeHistogram(histogram: Histogram): string {
  return encodeIntoCompressedBase64(histogram)
}

export function addEncoded(target: Histogram, encoded: string): void {
  const decoded = decodeFromCompressedBase64(encoded)
  target.add(decoded)
  decoded.destroy()
}

const us = (value: number): number => Math.round(value) / 1000

export function summarize(histogram: Histogram): LatencySummary {
  if (histogram.totalCount === 0) return { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 }
  return {
    count: histogram.totalCount,
    min: us(histogram.minNonZeroValue === Number.MAX_SAFE_INTEGER ? 0 : histogram.minNonZeroValue),
    mean: us(histogram.mean),
    p50: us(histogram.getValueAtPercentile(50)),
    p90: us(histogram.getValueAtPercentile(90)),
    p99: us(histogram.getValueAtPercentile(99)),
    p999: us(histogram.getValueAtPercentile(99.9)),
    max: us(histogram.maxValue),
  }
}
