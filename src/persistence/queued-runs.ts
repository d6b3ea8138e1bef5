// Copies queued for offline sessions are written as runs: one row per session and commit that
// lists the seqs of its copies, instead of one row per copy (the store writes a commit's copies
// as rows when a session gets only a few). Ten offline sessions subscribed to one topic then cost
// ten rows per batch, not ten per message. A run becomes ordinary outgoing rows ("materialized")
// once anything but an enqueue touches the session's queue.

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

  has(session: number): boolean {
    return this.#bySession.has(session)
  }

  clear(): void {
    this.#bySession.clear()
  }
}

/**
 * A run's seqs as stored: the first one, then (gap, repeats) pairs for the rest, all as unsigned
 * LEB128 varints. The copies of one commit for one session mostly sit at a fixed gap (every
 * message matched: consecutive bodies, SEQ_PER_BODY apart), so a run is a few bytes however many
 * copies it holds, and its row stays small enough for one page. Seqs ascend and stay below 2^53.
 */
export function encodeSeqs(seqs: readonly number[]): Buffer {
  const bytes: number[] = []
  if (seqs.length === 0) return Buffer.alloc(0)
  pushVarint(bytes, seqs[0] as number)
  let i = 1
  while (i < seqs.length) {
    const gap = (seqs[i] as number) - (seqs[i - 1] as number)
    if (!(gap > 0)) throw new Error(`queued run seqs must ascend (${String(seqs[i - 1])} then ${String(seqs[i])})`)
    let repeats = 1
    while (i + repeats < seqs.length && (seqs[i + repeats] as number) - (seqs[i + repeats - 1] as number) === gap) repeats++
    pushVarint(bytes, gap)
    pushVarint(bytes, repeats)
    i += repeats
  }
  return Buffer.from(bytes)
}

export function decodeSeqs(blob: Uint8Array): number[] {
  const seqs: number[] = []
  const at = { offset: 0 }
  if (blob.length === 0) return seqs
  let seq = readVarint(blob, at)
  seqs.push(seq)
  while (at.offset < blob.length) {
    const gap = readVarint(blob, at)
    const repeats = readVarint(blob, at)
    for (let k = 0; k < repeats; k++) {
      seq += gap
      seqs.push(seq)
    }
  }
  return seqs
}

function pushVarint(bytes: number[], value: number): void {
  let rest = value
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) + 0x80)
    rest = Math.floor(rest / 0x80)
  }
  bytes.push(rest)
}

function readVarint(blob: Uint8Array, at: { offset: number }): number {
  let value = 0
  let scale = 1
  for (;;) {
    if (at.offset >= blob.length) throw new Error(`a queued run of ${blob.length} bytes ends inside a number`)
    const byte = blob[at.offset++] as number
    value += (byte & 0x7f) * scale
    if (byte < 0x80) return value
    scale *= 0x80
  }
}
