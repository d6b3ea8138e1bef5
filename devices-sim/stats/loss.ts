// Compares what devices sent (and had acknowledged) with what one observation stream received.
import type { SourceSendRecord } from './send-ledger.js'
import { hasBit } from './sequence-tracker.js'

export interface LossResult {
  expected: number
  lost: number
  /** Unique messages received that were not expected (e.g. delivered but never acknowledged). */
  unexpected: number
  /** Sources with the most losses, worst first. */
  worst: Array<{ source: string; lost: number; firstLostSeq: number }>
}

export function computeLoss(
  sent: ReadonlyMap<string, SourceSendRecord>,
  received: ReadonlyMap<string, Uint8Array>,
  worstLimit = 10,
): LossResult {
  let expected = 0
  let lost = 0
  let unexpected = 0
  const worst: LossResult['worst'] = []
  const empty = new Uint8Array(0)
  for (const [source, record] of sent) {
    const excluded = new Set(record.notExpected)
    const bits = received.get(source) ?? empty
    let sourceLost = 0
    let firstLostSeq = 0
    for (let seq = 1; seq <= record.lastSeq; seq++) {
      const seen = hasBit(bits, seq)
      if (excluded.has(seq)) {
        if (seen) unexpected++
        continue
      }
      expected++
      if (!seen) {
        if (sourceLost === 0) firstLostSeq = seq
        sourceLost++
      }
    }
    lost += sourceLost
    if (sourceLost > 0) worst.push({ source, lost: sourceLost, firstLostSeq })
  }
  for (const [source, bits] of received) {
    if (sent.has(source)) continue
    for (let seq = 0; seq < bits.length * 8; seq++) if (hasBit(bits, seq)) unexpected++
  }
  worst.sort((a, b) => b.lost - a.lost || a.source.localeCompare(b.source))
  return { expected, lost, unexpected, worst: worst.slice(0, worstLimit) }
}
