// Device-side record of what was published, so "lost" can be defined precisely: a message is
// expected at the observers when it was acknowledged by the broker (QoS 1/2) or written to the
// socket (QoS 0), and its topic matches an observer filter. Sequences start at 1 per source.

export interface SourceSendRecord {
  lastSeq: number
  /** Seqs in 1..lastSeq that observers must not be blamed for (unacknowledged, failed, unobserved). */
  notExpected: number[]
}

export interface SendSnapshot {
  sources: Map<string, SourceSendRecord>
  sent: number
  acked: number
  failed: number
  /** Publishes still waiting for their acknowledgement when the snapshot was taken. */
  pending: number
  failures: Record<string, number>
}

interface SourceState {
  lastSeq: number
  notExpected: number[]
  pending: Set<number>
}

export interface SendLedger {
  /** A publish was handed to the client. */
  begin(source: string, seq: number, observed: boolean): void
  /** Its acknowledgement (or write, for QoS 0) arrived, or it failed. */
  settle(source: string, seq: number, error?: Error): void
  readonly sent: number
  readonly acked: number
  readonly failed: number
  readonly pending: number
  /** Failed publishes by reason (a copy). */
  readonly failures: Record<string, number>
  snapshot(): SendSnapshot
}

export function createSendLedger(): SendLedger {
  const sources = new Map<string, SourceState>()
  const failures: Record<string, number> = {}
  let sent = 0
  let acked = 0
  let failed = 0
  let pending = 0
  return {
    begin(source, seq, observed) {
      let state = sources.get(source)
      if (!state) {
        state = { lastSeq: 0, notExpected: [], pending: new Set() }
        sources.set(source, state)
      }
      sent++
      pending++
      if (seq > state.lastSeq) state.lastSeq = seq
      if (!observed) state.notExpected.push(seq)
      state.pending.add(seq)
    },
    settle(source, seq, error) {
      const state = sources.get(source)
      // A settle for an unknown or already settled seq would double count (mqtt.js can call a
      // callback again on close for messages it already acknowledged).
      if (!state || !state.pending.delete(seq)) return
      pending--
      if (error) {
        failed++
        const reason = error.message || 'unknown'
        failures[reason] = (failures[reason] ?? 0) + 1
        state.notExpected.push(seq)
      } else {
        acked++
      }
    },
    get sent() {
      return sent
    },
    get acked() {
      return acked
    },
    get failed() {
      return failed
    },
    get pending() {
      return pending
    },
    get failures() {
      return { ...failures }
    },
    snapshot() {
      const out = new Map<string, SourceSendRecord>()
      for (const [key, state] of sources) {
        // Still pending means never acknowledged: not the observers' fault if it never arrives.
        out.set(key, { lastSeq: state.lastSeq, notExpected: [...state.notExpected, ...state.pending] })
      }
      return { sources: out, sent, acked, failed, pending, failures: { ...failures } }
    },
  }
}
