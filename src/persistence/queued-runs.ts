// Copies queued for offline sessions are written as runs: one row per session and commit that
// lists the seqs of its copies, instead of one row per copy. Ten offline sessions subscribed to
// one topic then cost ten rows per batch, not ten per message. A run becomes ordinary outgoing
// rows ("materialized") once anything but an enqueue touches the session's queue.

/** One session's copies queued in the open batch, in seq order, and their payload bytes. */
export interface PendingRun {
  readonly session: number
  readonly seqs: number[]
  bytes: number
}

/** The open batch's runs, one per session, until they are written (take()). */
export class PendingRuns {
  readonly #bySession = new Map<number, PendingRun>()

  get size(): number {
    return this.#bySession.size
  }

  /** Adds one copy; seqs of a session must come in ascending order (body ids only grow). */
  add(session: number, seq: number, bytes: number): void {
    const run = this.#bySession.get(session)
    if (run === undefined) {
      this.#bySession.set(session, { session, seqs: [seq], bytes })
      return
    }
    run.seqs.push(seq)
    run.bytes += bytes
  }

  /** The runs, in the order their sessions first got a copy; leaves none pending. */
  take(): PendingRun[] {
    const runs = [...this.#bySession.values()]
    this.#bySession.clear()
    return runs
  }

  /** the sessions with a pending run */
  sessions(): IterableIterator<number> {
    return this.#bySession.keys()
  }

  clear(): void {
    this.#bySession.clear()
  }
}

/** A run's seqs as stored: 8-byte little-endian doubles (seqs stay below 2^53). */
export function encodeSeqs(seqs: readonly number[]): Buffer {
  const blob = Buffer.allocUnsafe(seqs.length * 8)
  for (let i = 0; i < seqs.length; i++) blob.writeDoubleLE(seqs[i] as number, i * 8)
  return blob
}

export function decodeSeqs(blob: Buffer): number[] {
  if (blob.length % 8 !== 0) throw new Error(`a queued run of ${blob.length} bytes is not a whole number of seqs`)
  const seqs = new Array<number>(blob.length / 8)
  for (let i = 0; i < seqs.length; i++) seqs[i] = blob.readDoubleLE(i * 8)
  return seqs
}
