/** Hints each map keeps: at least this many of the latest, at most twice as many. */
export const ROW_HINTS_KEPT = 32_768
/** Known copies kept (at most twice as many), and the largest stored packet worth keeping. */
export const KNOWN_COPIES_KEPT = 4096
export const KNOWN_COPY_MAX_BYTES = 1024

/** A copy's row as the store would read it back: its payload size and its stored packet. */
export interface KnownCopy {
  bytes: number
  packet: Buffer
}

const AMBIGUOUS = -1

/** A session's packet id as one number (a packet id is 16 bits): the key of a copy in flight. */
export function inFlightKey(session: number, messageId: number): number {
  return session * 65_536 + messageId
}

/**
 * Where the store last put a row, so that the next look-up of a live session's message is a
 * primary-key access instead of an index search: the body of a message queued for one session
 * (by broker counter), the seq of a queued copy the session's stored-queue stream handed out or
 * of a message queued for several connected sessions (by session, broker counter and broker id:
 * its update follows), and the seq of a copy in flight (by session and packet id); and what a
 * small copy's row holds (by seq), so that its acknowledgement deletes it without reading it
 * first. A hint is only ever a guess: the caller checks the row it
 * points at and falls back to the search, so a stale or forgotten hint costs one look-up, never a
 * wrong answer. Bounded: an offline session's messages leave hints nobody takes.
 */
export class RowHints {
  readonly #bodyByCounter = new RecentMap<number>()
  readonly #seqStreamed = new RecentMap<string>()
  readonly #seqInFlight = new RecentMap<number>()
  readonly #copies = new RecentMap<number, KnownCopy>(KNOWN_COPIES_KEPT)

  /** The body of a message (of this broker) queued for a single session. */
  queued(brokerCounter: number, body: number): void {
    const map = this.#bodyByCounter
    // one counter queued twice (two separate enqueues): no guess for it
    map.set(brokerCounter, map.get(brokerCounter) === undefined ? body : AMBIGUOUS)
  }

  /** The body queued under this broker counter, forgotten once asked. */
  takeQueued(brokerCounter: number): number | undefined {
    const body = this.#bodyByCounter.take(brokerCounter)
    return body === AMBIGUOUS ? undefined : body
  }

  /**
   * A queued (id-less) copy of a message for a session: one the stored-queue stream handed out, or
   * one of a message queued for several connected sessions. Its delivery follows.
   */
  streamed(session: number, brokerId: string, brokerCounter: number, seq: number): void {
    const map = this.#seqStreamed
    const key = streamedKey(session, brokerId, brokerCounter)
    const known = map.get(key)
    // two copies of one message in one session (variants of it): no guess for either
    map.set(key, known === undefined || known === seq ? seq : AMBIGUOUS)
  }

  /** The seq of that copy, forgotten once asked. */
  takeStreamed(session: number, brokerId: string, brokerCounter: number): number | undefined {
    const seq = this.#seqStreamed.take(streamedKey(session, brokerId, brokerCounter))
    return seq === AMBIGUOUS ? undefined : seq
  }

  /** A copy of a session's queue went out with this packet id. */
  inFlight(session: number, messageId: number, seq: number): void {
    this.#seqInFlight.set(inFlightKey(session, messageId), seq)
  }

  /** The seq of the copy in flight with this packet id, forgotten once asked. */
  takeInFlight(session: number, messageId: number): number | undefined {
    return this.#seqInFlight.take(inFlightKey(session, messageId))
  }

  /** What the row at this seq holds; not kept for a packet over KNOWN_COPY_MAX_BYTES. */
  copy(seq: number, bytes: number, packet: Buffer): void {
    if (packet.length <= KNOWN_COPY_MAX_BYTES) this.#copies.set(seq, { bytes, packet })
  }

  /** The row at this seq, forgotten once asked. */
  takeCopy(seq: number): KnownCopy | undefined {
    return this.#copies.take(seq)
  }

  /** The row at this seq changed (its body was replaced). */
  forgetCopy(seq: number): void {
    this.#copies.take(seq)
  }

  /** After a rollback: rows may be gone that hints point at. */
  clear(): void {
    this.#bodyByCounter.clear()
    this.#seqStreamed.clear()
    this.#seqInFlight.clear()
    this.#copies.clear()
  }
}

/**
 * The latest entries in two generations: a full young map becomes the old one and the previous
 * old one is dropped whole. (Evicting the oldest entry one at a time walks the holes deletions
 * leave at the front of a Map, which made every insert slower the longer the store ran.)
 */
class RecentMap<K, V = number> {
  #young = new Map<K, V>()
  #old = new Map<K, V>()

  constructor(private readonly kept = ROW_HINTS_KEPT) {}

  get(key: K): V | undefined {
    return this.#young.get(key) ?? this.#old.get(key)
  }

  set(key: K, value: V): void {
    if (this.#young.size >= this.kept) {
      this.#old = this.#young
      this.#young = new Map()
    }
    this.#old.delete(key)
    this.#young.set(key, value)
  }

  take(key: K): V | undefined {
    const value = this.get(key)
    if (value !== undefined && !this.#young.delete(key)) this.#old.delete(key)
    return value
  }

  clear(): void {
    this.#young.clear()
    this.#old.clear()
  }
}

/** Numbers first, so the broker id (any string) cannot make two keys collide. */
function streamedKey(session: number, brokerId: string, brokerCounter: number): string {
  return `${session} ${brokerCounter} ${brokerId}`
}
