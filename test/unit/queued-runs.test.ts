import { describe, expect, test } from 'vitest'
import { decodeSeqs, encodeSeqs, PendingRuns } from '../../src/persistence/queued-runs.js'

describe('queued runs', () => {
  test('copies are grouped by session, in order, with their bytes; take() empties the batch', () => {
    const runs = new PendingRuns()
    runs.add(7, 1024, 10)
    runs.add(3, 1024, 10)
    runs.add(7, 2048, 5)
    expect(runs.size).toBe(2)
    expect([...runs.sessions()]).toEqual([7, 3])
    expect(runs.take()).toEqual([
      { session: 7, seqs: [1024, 2048], bytes: 15 },
      { session: 3, seqs: [1024], bytes: 10 },
    ])
    expect(runs.size).toBe(0)
    expect(runs.take()).toEqual([])
  })

  test('seqs are stored as 8 bytes each and read back exactly, up to 2^53', () => {
    const seqs = [0, 1, 1024, 2 ** 40 * 1024 + 3, Number.MAX_SAFE_INTEGER]
    const blob = encodeSeqs(seqs)
    expect(blob).toHaveLength(40)
    expect(decodeSeqs(blob)).toEqual(seqs)
  })

  test('a blob that is not whole seqs is refused', () => {
    expect(() => decodeSeqs(Buffer.alloc(12))).toThrow(/12 bytes/)
  })
})
