import { describe, expect, test } from 'vitest'
import { decodeSeqs, encodeSeqs, PendingRuns } from '../../src/persistence/queued-runs.js'

describe('queued runs', () => {
  test('copies are grouped by session, in order, with their bytes; take() empties the batch', () => {
    const runs = new PendingRuns()
    runs.add(7, 1024, 10)
    runs.add(3, 1024, 10)
    runs.add(7, 2048, 5)
    expect(runs.size).toBe(2)
    expect([runs.has(7), runs.has(3), runs.has(5)]).toEqual([true, true, false])
    expect(runs.take()).toEqual([
      { session: 7, seqs: [1024, 2048], bytes: 15 },
      { session: 3, seqs: [1024], bytes: 10 },
    ])
    expect(runs.size).toBe(0)
    expect(runs.take()).toEqual([])
  })

  test('seqs at a fixed gap take a few bytes however many there are', () => {
    const seqs = Array.from({ length: 1000 }, (_, i) => (5_000_000 + i) * 1024)
    const blob = encodeSeqs(seqs)
    expect(blob.length).toBeLessThan(10)
    expect(decodeSeqs(blob)).toEqual(seqs)
  })

  test('any ascending seqs read back exactly, up to 2^53', () => {
    const seqs = [0, 1, 1024, 2048, 3072, 3073, 2 ** 40 * 1024 + 3, 2 ** 40 * 1024 + 1027, Number.MAX_SAFE_INTEGER]
    expect(decodeSeqs(encodeSeqs(seqs))).toEqual(seqs)
    expect(decodeSeqs(encodeSeqs([7]))).toEqual([7])
    expect(decodeSeqs(encodeSeqs([]))).toEqual([])
  })

  test('seqs that do not ascend are refused, and so is a blob cut inside a number', () => {
    expect(() => encodeSeqs([2048, 1024])).toThrow(/must ascend/)
    expect(() => encodeSeqs([1024, 1024])).toThrow(/must ascend/)
    const blob = encodeSeqs([1024, 2 ** 40])
    expect(() => decodeSeqs(blob.subarray(0, blob.length - 1))).toThrow(/ends inside a number/)
  })
})
