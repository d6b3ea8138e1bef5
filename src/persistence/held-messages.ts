import type { StoredListener } from './group-commit.js'
import { inFlightKey } from './row-hints.js'

/**
 * A QoS 1 message queued for one connected session, kept in memory instead of being written at
 * once: if the session acknowledges it soon after it went out, it never touches the disk. Its
 * publisher's PUBACK waits for that acknowledgement or for the commit that stores it (its
 * listener hears of whichever comes first).
 *
 * A class, not an object literal: one fixed shape for a hot path that makes one per message.
 */
export class HeldMessage {
  readonly body: number
  readonly session: number
  readonly brokerId: string
  readonly brokerCounter: number
  readonly bytes: number
  /** the packet as queued: encoded if it is written, handed back at its acknowledgement */
  readonly packet: object
  /** Date.now() when it was queued */
  readonly heldAt: number
  /** set once it went out (outgoingUpdate) */
  messageId: number | null = null
  /** Date.now() when it went out */
  sentAt = 0
  /** the publisher's side: told once the message is committed or acknowledged */
  readonly listener: StoredListener

  constructor(init: HeldMessageInit, now: number) {
    this.heldAt = now
    this.body = init.body
    this.session = init.session
    this.brokerId = init.brokerId
    this.brokerCounter = init.brokerCounter
    this.bytes = init.bytes
    this.packet = init.packet
    this.listener = init.listener
  }
}

/** What the store knows of a message when it holds it. */
export type HeldMessageInit = Pick<HeldMessage, 'body' | 'session' | 'brokerId' | 'brokerCounter' | 'bytes' | 'packet' | 'listener'>

/**
 * The held messages: those not sent yet by broker counter (their delivery looks them up that
 * way), those sent by session and packet id (their acknowledgement's key) in the order they went
 * out. A sent message waits `windowMs` for its acknowledgement. One not sent yet waits for its
 * delivery: the store writes it when its publisher starts waiting (see
 * SqlitePersistence.outgoingAwaited) or anything reads the queues, and at the latest
 * `unsentMaxMs` after it was queued. Past those times the timer (owned here, stopped by
 * `close()`) asks for them to be written (`onDue`, which calls takeDue).
 */
export class HeldMessages {
  readonly #unsent = new Map<number, HeldMessage>()
  readonly #sent = new Map<number, HeldMessage>()
  readonly #windowMs: number
  readonly #unsentMaxMs: number
  readonly #onDue: () => void
  #timer: NodeJS.Timeout | undefined
  #deadline = Infinity
  /** since start: released by an acknowledgement (or dropped unsent), and taken to be written */
  acknowledged = 0
  written = 0

  constructor(windowMs: number, unsentMaxMs: number, onDue: () => void) {
    this.#windowMs = windowMs
    this.#unsentMaxMs = unsentMaxMs
    this.#onDue = onDue
  }

  get size(): number {
    return this.#unsent.size + this.#sent.size
  }

  /** The caller checks that no message of this broker counter is held unsent already. */
  hold(init: HeldMessageInit, now: number): HeldMessage {
    const held = new HeldMessage(init, now)
    this.#unsent.set(init.brokerCounter, held)
    this.#arm(now + this.#unsentMaxMs)
    return held
  }

  /** The message not sent yet under this broker counter. */
  unsent(brokerCounter: number): HeldMessage | undefined {
    return this.#unsent.get(brokerCounter)
  }

  /**
   * It went out with this packet id: its window starts. false (nothing changed) if a message of
   * its session held with that packet id is not acknowledged yet: the caller writes them all.
   */
  markSent(held: HeldMessage, messageId: number, now: number): boolean {
    const key = inFlightKey(held.session, messageId)
    if (this.#sent.has(key)) return false
    this.#unsent.delete(held.brokerCounter)
    held.messageId = messageId
    held.sentAt = now
    this.#sent.set(key, held)
    this.#arm(now + this.#windowMs)
    return true
  }

  /**
   * The session acknowledged this packet id: the sent message it names, if one is held, is
   * forgotten. The caller tells its listener (its publisher may have its PUBACK) once the
   * caller's own state is settled: the listener runs the broker's code at once.
   */
  release(session: number, messageId: number): HeldMessage | undefined {
    const key = inFlightKey(session, messageId)
    const held = this.#sent.get(key)
    if (held === undefined) return undefined
    this.#sent.delete(key)
    this.acknowledged++
    return held
  }

  /** Forgets a message not sent yet that its session will not get (No Local, say); see release. */
  dropUnsent(held: HeldMessage): void {
    this.#unsent.delete(held.brokerCounter)
    this.acknowledged++
  }

  /** Removes and returns one message not sent yet. */
  takeUnsent(held: HeldMessage): HeldMessage {
    this.#unsent.delete(held.brokerCounter)
    this.written++
    return held
  }

  /** Removes and returns every held message, to be written. */
  takeAll(): HeldMessage[] {
    const taken = this.#removeAll()
    this.written += taken.length
    return taken
  }

  /** Removes and returns the messages whose time has passed at `now`. */
  takeDue(now: number): HeldMessage[] {
    const taken: HeldMessage[] = []
    const sentBefore = now - this.#windowMs
    for (const held of this.#sent.values()) {
      if (held.sentAt > sentBefore) break
      taken.push(held)
    }
    for (const held of taken) this.#sent.delete(inFlightKey(held.session, held.messageId as number))
    const sent = taken.length
    const heldBefore = now - this.#unsentMaxMs
    for (const held of this.#unsent.values()) {
      if (held.heldAt > heldBefore) break
      taken.push(held)
    }
    for (let i = sent; i < taken.length; i++) this.#unsent.delete(taken[i]!.brokerCounter)
    this.written += taken.length
    return taken
  }

  /**
   * Fails every held message and forgets it. Its publisher gets the error from a microtask: the
   * store is in the middle of a failed commit.
   */
  failAll(err: Error): void {
    const failed = this.#removeAll()
    if (failed.length > 0) queueMicrotask(() => tellStored(failed, err))
  }

  #removeAll(): HeldMessage[] {
    const taken = [...this.#unsent.values(), ...this.#sent.values()]
    this.#unsent.clear()
    this.#sent.clear()
    return taken
  }

  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#deadline = Infinity
  }

  /** One timer, set for the earliest deadline (later ones come in order: rarely re-set). */
  #arm(deadline: number): void {
    if (deadline >= this.#deadline) return
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#deadline = deadline
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, deadline - Date.now()))
  }

  #fire(): void {
    this.#timer = undefined
    this.#deadline = Infinity
    this.#onDue()
    const sent = this.#sent.values().next()
    if (!sent.done) this.#arm(sent.value.sentAt + this.#windowMs)
    const unsent = this.#unsent.values().next()
    if (!unsent.done) this.#arm(unsent.value.heldAt + this.#unsentMaxMs)
  }
}

/** Tells each message's listener the outcome of its write. */
export function tellStored(messages: readonly HeldMessage[], err: Error | null): void {
  for (const held of messages) held.listener.stored(err)
}
