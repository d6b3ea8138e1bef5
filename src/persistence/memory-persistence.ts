import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import type { Client } from 'aedes'
import { TopicMemo } from '../mqtt/topic-memo.js'

// The in-memory store of aedes-persistence (the async implementation the beta calls), kept for
// tests and benchmarks. It is extended only where mqlite needs it: clearing a client's incoming
// QoS 2 state, which the beta never does for clean sessions, and returning the Subscription
// Identifier with each topic match (its trie keeps only QoS and options; the SQLite index keeps
// the whole subscription). Its outgoing queues are replaced (see OutgoingQueue): each lookup scanned
// the client's whole queue, which grows to thousands under a flood.
const require = createRequire(import.meta.url)
const AsyncMemoryPersistence = require('aedes-persistence/asyncPersistence.js') as (new () => MemoryStoreBase) & {
  /** aedes-packet's Packet, as the base class copies queued messages with it */
  Packet: new (original: OutgoingPacket) => OutgoingPacket
}
const { Packet } = AsyncMemoryPersistence

/** A queued message or PUBREL, as far as the queue looks at it. */
interface OutgoingPacket {
  cmd?: string
  brokerId?: string
  brokerCounter?: number
  messageId?: number
}

interface Subscribed {
  topic: string
  subscriptionIdentifier?: number
}

interface Matched {
  clientId: string
  topic: string
  subscriptionIdentifier?: number
}

interface MemoryStoreBase {
  setup(broker: unknown): Promise<void>
  addSubscriptions(client: Pick<Client, 'id'>, subs: Subscribed[]): Promise<void>
  removeSubscriptions(client: Pick<Client, 'id'>, topics: string[]): Promise<void>
  cleanSubscriptions(client: Pick<Client, 'id'>): Promise<void>
  subscriptionsByTopic(topic: string): Promise<Matched[]>
  outgoingEnqueue(sub: { clientId: string }, packet: OutgoingPacket): Promise<void>
  outgoingEnqueueCombi(subs: ReadonlyArray<{ clientId: string }>, packet: OutgoingPacket): Promise<void>
  outgoingUpdate(client: Pick<Client, 'id'>, packet: OutgoingPacket): Promise<void>
  outgoingClearMessageId(client: Pick<Client, 'id'>, packet: OutgoingPacket | number | undefined): Promise<OutgoingPacket | undefined>
  outgoingStream(client: Pick<Client, 'id'>): Readable
  incomingStorePacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void>
  incomingDelPacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void>
  destroy(): Promise<void>
}

export class MemoryPersistence extends AsyncMemoryPersistence {
  /** message ids of stored incoming QoS 2 packets, per client: the base class keeps them private */
  readonly #incomingIds = new Map<string, Set<number>>()
  /** client id -> topic filter -> Subscription Identifier */
  readonly #identifiers = new Map<string, Map<string, number>>()
  /** client id -> its outgoing queue; the base class's own queues are never used */
  readonly #outgoing = new Map<string, OutgoingQueue>()
  /** subscriptionsByTopic answers until a subscription changes: a fleet publishes to the same topics */
  readonly #matches = new TopicMemo<Matched[]>()

  override async addSubscriptions(client: Pick<Client, 'id'>, subs: Subscribed[]): Promise<void> {
    this.#matches.forget()
    await super.addSubscriptions(client, subs)
    let byFilter = this.#identifiers.get(client.id)
    for (const sub of subs) {
      if (sub.subscriptionIdentifier === undefined) {
        byFilter?.delete(sub.topic)
        continue
      }
      if (!byFilter) this.#identifiers.set(client.id, (byFilter = new Map()))
      byFilter.set(sub.topic, sub.subscriptionIdentifier)
    }
    this.#matches.forget()
  }

  override async removeSubscriptions(client: Pick<Client, 'id'>, topics: string[]): Promise<void> {
    this.#matches.forget()
    await super.removeSubscriptions(client, topics)
    const byFilter = this.#identifiers.get(client.id)
    for (const topic of topics) byFilter?.delete(topic)
    this.#matches.forget()
  }

  override async cleanSubscriptions(client: Pick<Client, 'id'>): Promise<void> {
    this.#matches.forget()
    await super.cleanSubscriptions(client)
    this.#identifiers.delete(client.id)
    this.#matches.forget()
  }

  /**
   * The trie's matches, each with its Subscription Identifier if it has one. The array is shared
   * until a subscription changes (callers only read it); the base class changes its trie inside
   * its own async methods, so the changes forget on both sides of them and an answer computed
   * across a change is not kept.
   */
  override async subscriptionsByTopic(topic: string): Promise<Matched[]> {
    const known = this.#matches.get(topic)
    if (known !== undefined) return known
    const generation = this.#matches.generation
    const matches = await super.subscriptionsByTopic(topic)
    if (this.#identifiers.size > 0) {
      for (const match of matches) {
        const id = this.#identifiers.get(match.clientId)?.get(match.topic)
        if (id !== undefined) match.subscriptionIdentifier = id
      }
    }
    this.#matches.set(topic, matches, generation)
    return matches
  }

  override async outgoingEnqueue(sub: { clientId: string }, packet: OutgoingPacket): Promise<void> {
    this.#queueOf(sub.clientId).push(new Packet(packet))
  }

  /**
   * One copy per subscription, as the base class does: a client listed twice gets two. The copies
   * of one message share one packet until one of them is sent (see OutgoingQueue.update).
   */
  override async outgoingEnqueueCombi(subs: ReadonlyArray<{ clientId: string }>, packet: OutgoingPacket): Promise<void> {
    if (subs.length === 1) {
      this.#queueOf((subs[0] as { clientId: string }).clientId).push(new Packet(packet))
      return
    }
    const copy = new Packet(packet)
    sharedCopies.add(copy)
    for (const sub of subs) this.#queueOf(sub.clientId).push(copy)
  }

  /**
   * Records the packet id given to a queued message (matched by brokerId + brokerCounter), or
   * replaces the oldest message holding `packet`'s id under another brokerId (a PUBREL has none) by
   * `packet` itself, in its place in the queue: a PUBREL after PUBREC. A message of the same broker
   * with another counter only reuses the id, and is kept. Rejects if nothing matches, as the base did.
   */
  override async outgoingUpdate(client: Pick<Client, 'id'>, packet: OutgoingPacket): Promise<void> {
    if (!this.outgoingUpdateNow(client, packet)) throw new Error('no such packet')
  }

  /** outgoingUpdate without a promise, for the patched aedes; false: no such packet. */
  outgoingUpdateNow(client: Pick<Client, 'id'>, packet: OutgoingPacket): boolean {
    return this.#outgoing.get(client.id)?.update(packet) === true
  }

  /**
   * Deletes and returns the message (or PUBREL) with `packet`'s id. Without an id it deletes one
   * queued (id-less) copy: the one with `packet`'s brokerId + brokerCounter if it has them, else the
   * oldest; the SQLite store does the same. Resolves undefined if nothing matches.
   */
  override async outgoingClearMessageId(
    client: Pick<Client, 'id'>,
    packet: OutgoingPacket | number | undefined,
  ): Promise<OutgoingPacket | undefined> {
    return this.outgoingClearMessageIdNow(client, typeof packet === 'object' && packet !== null ? packet : {}) ?? undefined
  }

  /** outgoingClearMessageId without a promise, for the patched aedes; null: nothing matches. */
  outgoingClearMessageIdNow(client: Pick<Client, 'id'>, packet: OutgoingPacket): OutgoingPacket | null {
    const queue = this.#outgoing.get(client.id)
    if (!queue) return null
    const removed = queue.clear(packet)
    if (queue.size === 0) this.#outgoing.delete(client.id)
    return removed ?? null
  }

  /** The queue as it is now: later changes do not reach a stream already open. */
  override outgoingStream(client: Pick<Client, 'id'>): Readable {
    return Readable.from(this.#outgoing.get(client.id)?.snapshot() ?? [])
  }

  #queueOf(clientId: string): OutgoingQueue {
    let queue = this.#outgoing.get(clientId)
    if (!queue) this.#outgoing.set(clientId, (queue = new OutgoingQueue()))
    return queue
  }

  override async incomingStorePacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void> {
    await super.incomingStorePacket(client, packet)
    if (packet.messageId === undefined) return
    let ids = this.#incomingIds.get(client.id)
    if (!ids) this.#incomingIds.set(client.id, (ids = new Set()))
    ids.add(packet.messageId)
  }

  override async incomingDelPacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void> {
    await super.incomingDelPacket(client, packet)
    if (packet.messageId !== undefined) this.#incomingIds.get(client.id)?.delete(packet.messageId)
  }

  /** Forgets every incoming QoS 2 packet of a client whose session ended. */
  async cleanIncoming(client: Pick<Client, 'id'>): Promise<void> {
    const ids = this.#incomingIds.get(client.id)
    if (!ids) return
    this.#incomingIds.delete(client.id)
    for (const messageId of ids) await super.incomingDelPacket(client, { messageId }).catch(() => {})
  }
}

/** A seq, or the seqs in ascending (queue) order when several packets share an index key. */
type Seqs = number | number[]

/** Queued packets shared by the queues of several sessions: never given a packet id in place. */
const sharedCopies = new WeakSet<OutgoingPacket>()

/** Packets per chunk of a queue. */
const CHUNK = 1024

/** Consecutive seqs of a queue: the packet of seq `no * CHUNK + i` at slots[i]. */
interface Chunk {
  slots: Array<OutgoingPacket | undefined>
  live: number
}

/**
 * One client's outgoing queue. Packets are keyed by a sequence number that only grows and sit in
 * chunks of CHUNK consecutive seqs, kept in a Map in seq order: a push appends, a delete anywhere
 * leaves a hole, and a chunk whose packets are all gone is dropped, so an old packet never
 * acknowledged keeps one chunk alive, not everything queued after it. (A Map keyed by seq cost a
 * third of an offline fan-out's time, in inserts and rehashing.) The indexes find a packet by
 * brokerId + brokerCounter and by packet id without scanning. Only packets with a packet id are in
 * the packet-id index: the many queued ones not yet sent have none.
 */
class OutgoingQueue {
  readonly #chunks = new Map<number, Chunk>()
  /** the chunk pushes go to, while it exists */
  #tail: Chunk | undefined
  #nextSeq = 0
  #size = 0
  /** brokerId -> brokerCounter -> seq(s): one client can hold copies of one message */
  readonly #byCounter = new Map<string, Map<number, Seqs>>()
  /** packet id -> seq(s): an id can be reused while an older holder is still queued */
  readonly #byMessageId = new Map<number, Seqs>()

  get size(): number {
    return this.#size
  }

  push(packet: OutgoingPacket): void {
    const seq = this.#nextSeq++
    const at = seq % CHUNK
    let tail = this.#tail
    if (tail === undefined || at === 0) {
      tail = this.#tail = { slots: [], live: 0 }
      this.#chunks.set((seq - at) / CHUNK, tail)
    }
    tail.slots[at] = packet
    tail.live++
    this.#size++
    this.#index(seq, packet)
  }

  #chunkOf(seq: number): Chunk {
    return this.#chunks.get(Math.floor(seq / CHUNK)) as Chunk
  }

  #at(seq: number): OutgoingPacket {
    return this.#chunkOf(seq).slots[seq % CHUNK] as OutgoingPacket
  }

  /** Replaces the packet at a seq, in its place in the queue. */
  #set(seq: number, packet: OutgoingPacket): void {
    this.#chunkOf(seq).slots[seq % CHUNK] = packet
  }

  #delete(seq: number): void {
    const no = Math.floor(seq / CHUNK)
    const chunk = this.#chunks.get(no) as Chunk
    chunk.slots[seq % CHUNK] = undefined
    this.#size--
    if (--chunk.live > 0) return
    this.#chunks.delete(no)
    // the next push starts a chunk again (a later one keeps the Map in seq order)
    if (chunk === this.#tail) this.#tail = undefined
  }

  /** See MemoryPersistence.outgoingUpdate; false if no packet matches. */
  update(packet: OutgoingPacket): boolean {
    if (packet.brokerId !== undefined && packet.brokerCounter !== undefined) {
      const seq = first(this.#byCounter.get(packet.brokerId)?.get(packet.brokerCounter))
      if (seq !== undefined) {
        let stored = this.#at(seq)
        // a packet queued for several sessions gets a copy of its own once it has a packet id
        if (sharedCopies.has(stored)) {
          stored = new Packet(stored)
          this.#set(seq, stored)
        }
        this.#unindexMessageId(seq, stored)
        stored.messageId = packet.messageId
        this.#indexMessageId(seq, stored)
        return true
      }
    }
    if (packet.messageId === undefined) return false
    const seq = this.#firstWithMessageId(packet.messageId, (stored) => stored.brokerId !== packet.brokerId)
    if (seq === undefined) return false
    this.#unindex(seq, this.#at(seq))
    this.#set(seq, packet)
    this.#index(seq, packet)
    return true
  }

  /** See MemoryPersistence.outgoingClearMessageId. */
  clear(packet: OutgoingPacket): OutgoingPacket | undefined {
    let seq: number | undefined
    if (packet.messageId !== undefined) {
      seq = this.#firstWithMessageId(packet.messageId, () => true)
    } else if (packet.brokerId !== undefined && packet.brokerCounter !== undefined) {
      seq = this.#firstQueuedCopy(packet.brokerId, packet.brokerCounter)
    } else {
      seq = this.#oldestQueued()
    }
    if (seq === undefined) return undefined
    const removed = this.#at(seq)
    this.#delete(seq)
    this.#unindex(seq, removed)
    return removed
  }

  /** A shallow copy, as the base class streamed: the packets themselves are shared. */
  snapshot(): OutgoingPacket[] {
    const packets: OutgoingPacket[] = []
    for (const { slots } of this.#chunks.values()) {
      for (const packet of slots) if (packet !== undefined) packets.push(packet)
    }
    return packets
  }

  #firstWithMessageId(messageId: number, accept: (stored: OutgoingPacket) => boolean): number | undefined {
    const seqs = this.#byMessageId.get(messageId)
    if (typeof seqs === 'number') return accept(this.#at(seqs)) ? seqs : undefined
    return seqs?.find((seq) => accept(this.#at(seq)))
  }

  #firstQueuedCopy(brokerId: string, brokerCounter: number): number | undefined {
    const seqs = this.#byCounter.get(brokerId)?.get(brokerCounter)
    if (typeof seqs === 'number') return this.#at(seqs).messageId === undefined ? seqs : undefined
    return seqs?.find((seq) => this.#at(seq).messageId === undefined)
  }

  /** A scan from the head: only reached for a packet with neither an id nor a broker counter. */
  #oldestQueued(): number | undefined {
    for (const [no, { slots }] of this.#chunks) {
      for (let i = 0; i < slots.length; i++) if (slots[i] !== undefined && slots[i]!.messageId === undefined) return no * CHUNK + i
    }
    return undefined
  }

  // A packet without brokerId or brokerCounter (a PUBREL) is never looked up by them, so it is not
  // indexed by them either: the PUBRELs of a QoS 2 flood would share one key.
  #index(seq: number, packet: OutgoingPacket): void {
    const { brokerId, brokerCounter } = packet
    if (brokerId !== undefined && brokerCounter !== undefined) {
      let byCounter = this.#byCounter.get(brokerId)
      if (!byCounter) this.#byCounter.set(brokerId, (byCounter = new Map()))
      byCounter.set(brokerCounter, withSeq(byCounter.get(brokerCounter), seq))
    }
    this.#indexMessageId(seq, packet)
  }

  #unindex(seq: number, packet: OutgoingPacket): void {
    const { brokerId, brokerCounter } = packet
    const byCounter = brokerId === undefined ? undefined : this.#byCounter.get(brokerId)
    if (byCounter && brokerCounter !== undefined) {
      const rest = withoutSeq(byCounter.get(brokerCounter), seq)
      if (rest === undefined) byCounter.delete(brokerCounter)
      else byCounter.set(brokerCounter, rest)
      if (byCounter.size === 0) this.#byCounter.delete(brokerId as string)
    }
    this.#unindexMessageId(seq, packet)
  }

  #indexMessageId(seq: number, packet: OutgoingPacket): void {
    if (packet.messageId === undefined) return
    this.#byMessageId.set(packet.messageId, withSeq(this.#byMessageId.get(packet.messageId), seq))
  }

  #unindexMessageId(seq: number, packet: OutgoingPacket): void {
    if (packet.messageId === undefined) return
    const rest = withoutSeq(this.#byMessageId.get(packet.messageId), seq)
    if (rest === undefined) this.#byMessageId.delete(packet.messageId)
    else this.#byMessageId.set(packet.messageId, rest)
  }
}

function first(seqs: Seqs | undefined): number | undefined {
  return typeof seqs === 'number' ? seqs : seqs?.[0]
}

/** `seqs` with `seq` in its ascending place: a replaced packet keeps an older seq. */
function withSeq(seqs: Seqs | undefined, seq: number): Seqs {
  if (seqs === undefined) return seq
  const list = typeof seqs === 'number' ? [seqs] : seqs
  let at = list.length
  while (at > 0 && list[at - 1]! > seq) at--
  list.splice(at, 0, seq)
  return list
}

/** `seqs` without `seq`; undefined once empty, a plain seq once single. */
function withoutSeq(seqs: Seqs | undefined, seq: number): Seqs | undefined {
  if (typeof seqs !== 'object') return seqs === seq ? undefined : seqs
  const at = seqs.indexOf(seq)
  if (at >= 0) seqs.splice(at, 1)
  return seqs.length === 1 ? seqs[0] : seqs
}
