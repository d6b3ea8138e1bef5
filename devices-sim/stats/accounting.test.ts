import { describe, expect, it } from 'vitest'
import { computeLoss } from './loss.js'
import { createSendLedger } from './send-ledger.js'
import { createSequenceTracker, mergeSnapshots } from './sequence-tracker.js'

describe('sequence tracker', () => {
  it('classifies injected arrivals', () => {
    const t = createSequenceTracker()
    const arrivals = [1, 2, 3, 3, 5, 4, 2, 6].map((seq) => t.record('d/0', seq))
    expect(arrivals).toEqual(['in-order', 'in-order', 'in-order', 'duplicate', 'in-order', 'out-of-order', 'duplicate', 'in-order'])
    expect({ received: t.received, unique: t.unique, duplicates: t.duplicates, outOfOrder: t.outOfOrder }).toEqual({ received: 8, unique: 6, duplicates: 2, outOfOrder: 1 })
  })

  it('keeps sources apart and grows for large sequence numbers', () => {
    const t = createSequenceTracker()
    t.record('a/0', 100_000)
    expect(t.record('b/0', 100_000)).toBe('in-order')
    expect(t.record('a/0', 100_000)).toBe('duplicate')
    expect(t.record('a/1', 1)).toBe('in-order')
  })

  it('merges shared-group members, counting overlaps as duplicates', () => {
    const a = createSequenceTracker()
    const b = createSequenceTracker()
    ;[1, 3, 5].forEach((s) => a.record('d/0', s))
    ;[2, 3, 4].forEach((s) => b.record('d/0', s))
    b.record('e/0', 1)
    const merged = mergeSnapshots([a.snapshot(), b.snapshot()])
    expect(merged).toMatchObject({ received: 7, unique: 6, duplicates: 1 })
    const loss = computeLoss(new Map([['d/0', { lastSeq: 6, notExpected: [] }], ['e/0', { lastSeq: 1, notExpected: [] }]]), merged.sources)
    expect(loss).toMatchObject({ expected: 7, lost: 1, worst: [{ source: 'd/0', lost: 1, firstLostSeq: 6 }] })
  })
})

describe('loss', () => {
  it('blames observers only for acknowledged messages', () => {
    const ledger = createSendLedger()
    for (let seq = 1; seq <= 6; seq++) ledger.begin('d/0', seq, true)
    ledger.settle('d/0', 1)
    ledger.settle('d/0', 2)
    ledger.settle('d/0', 3, new Error('Connection closed'))
    ledger.settle('d/0', 4)
    ledger.settle('d/0', 4) // a second callback for the same message must not count twice
    ledger.settle('d/0', 6)
    // seq 5 never acknowledged
    const snap = ledger.snapshot()
    expect(snap).toMatchObject({ sent: 6, acked: 4, failed: 1, pending: 1, failures: { 'Connection closed': 1 } })

    const t = createSequenceTracker()
    ;[1, 3, 5].forEach((s) => t.record('d/0', s)) // 2, 4 and 6 missing; 3 and 5 arrived although not acked
    const loss = computeLoss(snap.sources, t.snapshot().sources)
    expect(loss).toMatchObject({ expected: 4, lost: 3, unexpected: 2 })
    expect(loss.worst).toEqual([{ source: 'd/0', lost: 3, firstLostSeq: 2 }])
  })

  it('excludes messages on topics no observer subscribes to', () => {
    const ledger = createSendLedger()
    ledger.begin('d/0', 1, true)
    ledger.begin('d/0', 2, false)
    ledger.settle('d/0', 1)
    ledger.settle('d/0', 2)
    const t = createSequenceTracker()
    t.record('d/0', 1)
    expect(computeLoss(ledger.snapshot().sources, t.snapshot().sources)).toMatchObject({ expected: 1, lost: 0, unexpected: 0 })
  })

  it('counts received messages from unknown sources as unexpected', () => {
    const t = createSequenceTracker()
    t.record('ghost/0', 1)
    t.record('ghost/0', 2)
    expect(computeLoss(new Map(), t.snapshot().sources)).toMatchObject({ expected: 0, lost: 0, unexpected: 2 })
  })
})
