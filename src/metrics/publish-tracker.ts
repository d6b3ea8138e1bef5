/**
 * When recent publishes arrived, keyed by aedes's broker counter (the number every copy of a
 * message carries, per subscriber and in the store). aedes copies packets field by field on the
 * way to each subscriber, so nothing stamped on the incoming packet survives to the write; the
 * counter does.
 *
 * A fixed ring of typed arrays: recording a publish is two array writes, no allocation. A slot
 * is reused after RING_SIZE newer publishes, so a message still undelivered by then (an offline
 * session's queue, a subscriber stalled far behind) is no longer timed, which
 * keeps the latency histogram about the broker, not about how long a client stayed away.
 */
export const RING_SIZE = 1 << 15
const MASK = RING_SIZE - 1

export interface PublishTracker {
  /** A publish with broker counter `seq` arrived at `receivedAt` (performance.now() ms). */
  record(seq: number, receivedAt: number): void
  /** When it arrived (performance.now() ms), or -1 when it is not (or no longer) tracked. */
  receivedAt(seq: number): number
}

export function createPublishTracker(): PublishTracker {
  const seqs = new Float64Array(RING_SIZE)
  const times = new Float64Array(RING_SIZE)
  return {
    record(seq, receivedAt) {
      const i = seq & MASK
      seqs[i] = seq
      times[i] = receivedAt
    },
    receivedAt(seq) {
      const i = seq & MASK
      return seqs[i] === seq ? times[i]! : -1
    },
  }
}
