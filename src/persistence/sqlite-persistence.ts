import { statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import type { Database, Statement } from 'better-sqlite3'
import { NoSuchPacketError, QueueFullError, StoreClosedError } from './errors.js'
import { GroupCommit, type StoredListener } from './group-commit.js'
import { HeldMessages, tellStored, type HeldMessage } from './held-messages.js'
import { openDatabase } from './open-database.js'
import { resolveStoreOptions, type DropReason, type ResolvedStoreOptions, type SqlitePersistenceOptions } from './options.js'
import { decodePacket, encodePacket, payloadBytes, type StoredObject } from './packet-codec.js'
import { QueueAccounting, type QueueLimits } from './queue-accounting.js'
import { decodeSeqs, encodeSeqs, PendingRuns } from './queued-runs.js'
import { SEQ_PER_BODY } from './schema.js'
import { bodiesInsertRows, INSERT_ROWS_MAX, outgoingInsertRows, outgoingInsertSentRows, prepareStatements, runInserts, type BodyValues, type OutgoingRow, type Statements } from './statements.js'
import { pagedStream } from './paged-stream.js'
import { RowHints } from './row-hints.js'
import { SubscriptionIndex, type MatchedSubscription } from './subscription-index.js'
import { topicMatches } from '../mqtt/topic-match.js'
import { hasWildcard, topicRange } from './topic-filter.js'

/** A session expiry interval of 0xFFFFFFFF seconds means "never expires" [MQTT-3.1.2.11.2]. */
export const SESSION_NEVER_EXPIRES = 0xffffffff

/** Messages held at most at once (see #hold); more take the usual path. */
const HELD_MAX = 65_536
/**
 * A held message not sent within this many ack windows is written anyway: the patched aedes says
 * when its publisher waits (outgoingAwaited), a caller that does not is not kept waiting forever.
 */
const UNSENT_WINDOWS = 50

/** Oldest queued rows read at once for an offline session whose full queue drops its oldest. */
const OLDEST_READ_AHEAD = 256

/** Values per bodies row (BodyValues). */
const BODY_VALUES = 6

/** Queued runs read at once while they are turned into rows. */
const RUNS_PER_READ = 16
/**
 * Fewer copies for one session in one commit go in as ordinary rows: a run row is one statement
 * of its own, a row one part of a 64-row insert (one message to 10,000 offline sessions per
 * commit took twice as long per copy as runs of one).
 */
const RUN_MIN_COPIES = 4

/** What aedes passes as a client: the store only reads the id. */
export interface ClientRef {
  id: string
}

/** An aedes packet (publish, pubrel, will) as far as the store reads it. */
export interface PacketLike {
  cmd?: string
  topic?: string
  payload?: unknown
  qos?: number
  retain?: boolean
  dup?: boolean
  messageId?: number
  brokerId?: string
  brokerCounter?: number
  /** absolute expiry, ms since the epoch, stamped by aedes from the Message Expiry Interval */
  messageExpiry?: number
  properties?: object
  /** set on wills */
  clientId?: string
}

/** A subscription as aedes hands it over: topic, QoS and the MQTT 5 options; stored whole. */
export interface SubscriptionLike {
  topic: string
  qos?: number
  nl?: boolean
  rap?: boolean
  rh?: number
  subscriptionIdentifier?: number
}

/** The broker fields the store uses; aedes passes itself to setup(). */
export interface BrokerRef {
  id: string
  counter?: number
}

export interface SessionInfo {
  /** seconds after disconnection; SESSION_NEVER_EXPIRES for never */
  expiryIntervalSeconds: number
  protocolVersion: number
}

export interface StoreStats {
  retained: number
  /** all stored subscriptions, QoS 0 included */
  subscriptions: number
  /** outgoing messages not yet sent */
  queued: number
  /** outgoing messages sent and not yet acknowledged (PUBREL records included) */
  inflight: number
  /** database file plus its write-ahead log */
  dbBytes: number
  /** sessions recorded with sessionConnected and not deleted, connected or not */
  sessions: number
  /** held messages since start (see HeldMessages): acknowledged without a write, or written */
  held?: { acknowledged: number; written: number }
}

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed'

const require = createRequire(import.meta.url)
// aedes's own packet shape: it drops the wire-only fields (length, the publisher's messageId).
const AedesPacket = require('aedes-packet') as new (original: object, broker?: object) => PacketLike

/**
 * The aedes persistence backed by SQLite (WAL, group commit).
 *
 * Durability: every mutating method returns a promise that resolves only after the transaction
 * holding its write is committed (see GroupCommit); a failed commit rejects every write of that
 * batch. aedes acknowledges publishes after these promises, so an acknowledged message is on disk.
 * Read methods first wait until nothing uncommitted is pending, so they never hand out state that
 * a failed commit could still take back. Subscription matching is served from memory.
 *
 * One exception, for speed: a QoS 1 message queued (outgoingEnqueueCombi) for one connected
 * session is held in memory (#hold, HeldMessages). Its promise settles (its listener is told,
 * through outgoingEnqueueCombiNotify) once it is committed or once the session acknowledged it,
 * whichever comes first; an acknowledgement soon after it went out spares every write. So its
 * caller delivers it first and waits afterwards: the patched aedes does, and tells the store when
 * it starts waiting (outgoingAwaited).
 *
 * Offline-queue bounds (maxQueuedMessages / maxQueuedBytes per session, 0 = unlimited; both count
 * queued and in-flight rows):
 * - 'drop-oldest': the session's oldest queued (never sent) messages are deleted to make room; a
 *   message that cannot fit even then (bigger than maxQueuedBytes, or everything in flight) is not
 *   queued. In-flight messages are never dropped: the client holds their packet ids.
 * - 'refuse': the new message is not queued for that session. outgoingEnqueue (one session)
 *   rejects with QueueFullError; outgoingEnqueueCombi (all matching sessions of one publish)
 *   queues for every other session and resolves, so one full subscriber never costs the others the
 *   message nor fails the publisher's acknowledgement.
 * Either way each message not queued is reported through onDrop('queue_full', ...). A live
 * subscriber still receives a message that was not queued for it; it is just not durable.
 *
 * Message expiry: outgoingStream skips and deletes queued messages whose `messageExpiry` has passed
 * (onDrop('expired', ...)) and sets the remaining Message Expiry Interval on the others.
 */
export class SqlitePersistence {
  readonly #options: ResolvedStoreOptions
  readonly #limits: QueueLimits
  readonly #index = new SubscriptionIndex()
  readonly #queues = new QueueAccounting()
  #state: State = 'new'
  #db: Database | undefined
  #sql: Statements | undefined
  #insertRows: (n: number) => Statement<number[]> = () => {
    throw new StoreClosedError('not set up')
  }
  #insertBodies: (n: number) => Statement<Array<BodyValues[number]>> = () => {
    throw new StoreClosedError('not set up')
  }
  #insertSentRows: (n: number) => Statement<Array<number | null>> = () => {
    throw new StoreClosedError('not set up')
  }
  // Rows of the open batch's enqueues, not inserted yet: they go in INSERT_ROWS_MAX at a time
  // (about 40% less time than a statement or two per message), and the rest before anything
  // else touches the database and before COMMIT (#insertDeferred). Their promises settle with
  // that COMMIT.
  readonly #deferredBodies: Array<BodyValues[number]> = []
  readonly #deferredCopies: number[] = []
  /** held messages being written: (session, seq, message_id) per row */
  readonly #deferredSent: Array<number | null> = []
  /**
   * offline sessions' copies of the open batch: one queued_runs row per session at the commit
   * (rows when fewer than RUN_MIN_COPIES)
   */
  readonly #pendingRuns = new PendingRuns()
  /** sessions with queued_runs rows: their queue is read only after #materializeRuns (see #hasRuns) */
  readonly #runSessions = new Set<number>()
  /** QoS 1 messages for a connected session, waiting for its PUBACK before being written */
  readonly #held: HeldMessages
  /**
   * Offline sessions' oldest queued rows, read ahead for drop-oldest (#makeRoom), newest first
   * (taken with pop()). While a session is offline only enqueues touch its queue, which add newer
   * rows: the list stays its oldest. Forgotten when the session connects or goes, at a rollback,
   * and at any update of its rows.
   */
  readonly #oldestQueued = new Map<string, Array<{ seq: number; bytes: number }>>()
  /** a deferred insert that failed: the batch's commit must fail with it */
  #deferredError: unknown
  /** where a live session's next update and acknowledgement will find their row */
  readonly #hints = new RowHints()
  /** client ids recorded as connected: only their messages are worth a hint */
  readonly #connected = new Set<string>()
  // scratch space of #enqueue and #deferCopies, which run synchronously, one at a time
  readonly #copies = new Map<number, number>()
  /** #allDistinct's stamps, by session id */
  #seen = new Uint32Array(64)
  #stamp = 0
  readonly #sessionsScratch: number[] = []
  readonly #addedScratch: string[] = []
  #commit: GroupCommit | undefined
  #broker: BrokerRef | undefined
  #retainedCount = 0
  #sessionCount = 0
  /** outgoing rows name their session by an integer id (the clients table) */
  readonly #sessionIds = new Map<string, number>()
  // Ids handed out by this process only ever grow, also across rolled-back batches: a stream or a
  // seq computed before a rollback can never meet another session's or message's rows.
  #nextSession = 1
  /** next bodies.id; every seq in outgoing is below #nextBody * SEQ_PER_BODY */
  #nextBody = 1
  #closing: Promise<void> | undefined

  constructor(options: string | SqlitePersistenceOptions) {
    this.#options = resolveStoreOptions(options)
    this.#limits = { maxMessages: this.#options.maxQueuedMessages, maxBytes: this.#options.maxQueuedBytes }
    const { ackWindowMs } = this.#options
    this.#held = new HeldMessages(ackWindowMs, ackWindowMs * UNSENT_WINDOWS, () => this.#writeDueHeld())
  }

  /** The broker given to setup() (the aedes-persistence conformance suite reads it). */
  get broker(): BrokerRef | undefined {
    return this.#broker
  }

  /**
   * Opens the database, runs pending migrations and loads the in-memory indexes. Must stay a
   * native async method: aedes checks `setup.constructor.name === 'AsyncFunction'`.
   * Throws StoreOpenError, StoreCorruptError or SchemaTooNewError with a message saying what to do.
   */
  async setup(broker: BrokerRef): Promise<void> {
    if (this.#state !== 'new') throw new StoreClosedError(`already ${this.#state}`)
    this.#state = 'opening'
    try {
      const { path, synchronous, busyTimeoutMs, maxBatch, commitIntervalMs, onCommit, logger } = this.#options
      const db = openDatabase({ path, synchronous, busyTimeoutMs })
      this.#db = db
      this.#sql = prepareStatements(db)
      this.#insertRows = outgoingInsertRows(db)
      this.#insertBodies = bodiesInsertRows(db)
      this.#insertSentRows = outgoingInsertSentRows(db)
      this.#commit = new GroupCommit(db, {
        maxBatch,
        commitIntervalMs,
        beforeCommit: () => {
          this.#writeHeld(this.#held.takeDue(Date.now()))
          this.#insertDeferred()
          const error = this.#deferredError
          this.#deferredError = undefined
          if (error !== undefined) throw error
        },
        ...(onCommit ? { onCommit } : {}),
        onCommitError: (error) => {
          logger?.error({ err: error }, 'store commit failed; the batch was rolled back')
          // a held message may name a session row that was just rolled back: fail them too
          this.#held.failAll(error)
          this.#loadState()
        },
      })
      this.#broker = broker
      this.#loadState()
      this.#recoverAfterRestart(broker)
      this.#state = 'open'
      logger?.info({ path, synchronous, ...this.#countsForLog() }, 'SQLite store open')
    } catch (err) {
      this.#db?.close()
      this.#db = undefined
      this.#state = 'closed'
      throw err
    }
  }

  // ---------------------------------------------------------------- retained messages

  /** Stores a retained message; an empty payload deletes the topic's retained message. */
  async storeRetained(packet: PacketLike): Promise<void> {
    const sql = this.#statements()
    const topic = String(packet.topic)
    if (payloadBytes(packet) === 0) {
      return this.#write(() => {
        if (sql.retainedDelete.run(topic).changes > 0) this.#retainedCount--
      }, true, false)
    }
    const blob = encodePacket(packet)
    return this.#write(() => {
      const existed = sql.retainedExists.get(topic) !== undefined
      sql.retainedUpsert.run(topic, blob)
      if (!existed) this.#retainedCount++
    }, true, false)
  }

  createRetainedStream(pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern])
  }

  /** Retained messages matching any of the filters, each once, read in pages. */
  createRetainedStreamCombi(patterns: readonly string[]): Readable {
    if (this.#state !== 'open') return this.#closedStream()
    return Readable.from(this.#retainedMatching(patterns))
  }

  async *#retainedMatching(patterns: readonly string[]): AsyncGenerator<StoredObject> {
    // one pattern visits each topic once; several may meet the same topic
    const seen = patterns.length > 1 ? new Set<string>() : undefined
    const pageSize = this.#options.pageSize
    for (const pattern of patterns) {
      if (!hasWildcard(pattern)) {
        const sql = await this.#readable()
        const row = sql.retainedGet.get(pattern)
        if (row && !seen?.has(pattern)) {
          seen?.add(pattern)
          yield decodePacket(row.packet)
        }
        continue
      }
      const { lower, upper } = topicRange(pattern)
      const wholePages = !pattern.includes('+')
      let from = lower
      for (;;) {
        const sql = await this.#readable()
        const page: Array<{ topic: string; packet?: Buffer }> = wholePages
          ? upper === undefined
            ? sql.retainedFrom.all(from, pageSize)
            : sql.retainedBetween.all(from, upper, pageSize)
          : upper === undefined
            ? sql.retainedTopicsFrom.all(from, pageSize)
            : sql.retainedTopicsBetween.all(from, upper, pageSize)
        const packets: StoredObject[] = []
        for (const row of page) {
          const { topic } = row
          if (seen?.has(topic) || !topicMatches(pattern, topic)) continue
          const packet = row.packet ?? sql.retainedGet.get(topic)?.packet
          if (packet === undefined) continue
          seen?.add(topic)
          packets.push(decodePacket(packet))
        }
        yield* packets
        const last = page.at(-1)
        if (page.length < pageSize || last === undefined) break
        // U+0000 cannot occur in a topic [MQTT-4.7.3-2]: this is the next possible topic.
        from = `${last.topic}\u0000`
      }
    }
  }

  // ---------------------------------------------------------------- subscriptions

  async addSubscriptions(client: ClientRef, subs: readonly SubscriptionLike[]): Promise<void> {
    const sql = this.#statements()
    const records = subs.map((sub) => ({ sub, qos: sub.qos ?? 0, blob: encodePacket(sub) }))
    return this.#write(() => {
      for (const { sub, qos, blob } of records) sql.subscriptionUpsert.run(client.id, sub.topic, qos, blob)
      for (const { sub, qos } of records) this.#index.add(client.id, { ...sub, qos })
    }, records.length <= 1, false)
  }

  async removeSubscriptions(client: ClientRef, topics: readonly string[]): Promise<void> {
    const sql = this.#statements()
    return this.#write(() => {
      for (const topic of topics) sql.subscriptionDelete.run(client.id, topic)
      for (const topic of topics) this.#index.remove(client.id, topic)
    }, topics.length <= 1, false)
  }

  async cleanSubscriptions(client: ClientRef): Promise<void> {
    const sql = this.#statements()
    return this.#write(() => {
      sql.subscriptionsDeleteClient.run(client.id)
      this.#index.removeClient(client.id)
    }, true, false)
  }

  /** The client's subscriptions as stored (QoS, nl, rap, rh, subscriptionIdentifier), in order. */
  async subscriptionsByClient(client: ClientRef): Promise<SubscriptionLike[]> {
    const sql = await this.#readable()
    return sql.subscriptionsOfClient.all(client.id).map((row) => decodePacket(row.sub) as unknown as SubscriptionLike)
  }

  /** Stored subscriptions whose filter starts with `prefix` (the broker restores shared groups). */
  subscriptionsWithPrefix(prefix: string): Array<{ clientId: string; topic: string; qos: number }> {
    return this.#index.withPrefix(prefix)
  }

  /** QoS > 0 subscriptions matching a topic: in memory, called on every QoS > 0 publish. */
  async subscriptionsByTopic(topic: string): Promise<MatchedSubscription[]> {
    return this.subscriptionsByTopicNow(topic)
  }

  /**
   * subscriptionsByTopic without the promise, which the patched aedes prefers: its publish then
   * takes no promise, microtask or enqueuer object per QoS > 0 message.
   */
  subscriptionsByTopicNow(topic: string): MatchedSubscription[] {
    this.#statements()
    return this.#index.match(topic)
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    this.#statements()
    return { subsCount: this.#index.matchableCount, clientsCount: this.#index.clientCount }
  }

  /** Ids of the clients subscribed to exactly this topic filter. */
  getClientList(topic: string): Readable {
    if (this.#state !== 'open') return this.#closedStream()
    const that = this
    return Readable.from(
      (async function* clientsOfTopic() {
        const sql = await that.#readable()
        for (const row of sql.clientsOfTopic.all(topic)) yield row.client_id
      })(),
    )
  }

  // ---------------------------------------------------------------- outgoing queues

  /** Queues a message for one session; rejects with QueueFullError if full under 'refuse'. */
  outgoingEnqueue(sub: { clientId: string }, packet: PacketLike): Promise<void> {
    try {
      return this.#enqueue([sub], packet, true)
    } catch (err) {
      return Promise.reject(err as Error)
    }
  }

  /** Queues one message for every matching session (see the class comment for full queues). */
  outgoingEnqueueCombi(subs: ReadonlyArray<{ clientId: string }>, packet: PacketLike): Promise<void> {
    // the private method: planOfflineQueue replaces the public one with a wrapper that calls this
    return new Promise((resolve, reject) => this.#enqueueNotify(subs, packet, { stored: (err) => (err ? reject(err) : resolve()) }))
  }

  /**
   * outgoingEnqueueCombi for the patched aedes, which looks for this method: the rows are seen by
   * the store's next call at once, so live deliveries need not wait for the commit (the
   * publisher's PUBACK does, through `listener`). A listener rather than a promise: a message held
   * for a live session would otherwise keep a promise and its reactions alive until its PUBACK.
   */
  outgoingEnqueueCombiNotify(subs: ReadonlyArray<{ clientId: string }>, packet: PacketLike, listener: StoredListener): void {
    this.#enqueueNotify(subs, packet, listener)
  }

  #enqueueNotify(subs: ReadonlyArray<{ clientId: string }>, packet: PacketLike, listener: StoredListener): void {
    let stored: Promise<void> | undefined
    try {
      stored = this.#enqueue(subs, packet, false, listener)
    } catch (err) {
      stored = Promise.reject(err as Error)
    }
    stored?.then(
      () => listener.stored(null),
      (err: Error) => listener.stored(err),
    )
  }

  /**
   * The durable path of every QoS > 0 publish to offline sessions: kept free of extra promises.
   * undefined when the message is held (see #hold): then `listener` hears of it.
   */
  #enqueue(subs: ReadonlyArray<{ clientId: string }>, packet: PacketLike, oneSession: false, listener: StoredListener): Promise<void> | undefined
  #enqueue(subs: ReadonlyArray<{ clientId: string }>, packet: PacketLike, oneSession: true): Promise<void>
  #enqueue(subs: ReadonlyArray<{ clientId: string }>, packet: PacketLike, oneSession: boolean, listener?: StoredListener): Promise<void> | undefined {
    const stored = new AedesPacket(packet)
    const bytes = payloadBytes(stored)
    const brokerId = typeof stored.brokerId === 'string' ? stored.brokerId : null
    const brokerCounter = typeof stored.brokerCounter === 'number' ? stored.brokerCounter : null
    // not for outgoingEnqueue: its callers deliver only once its promise settles
    if (listener !== undefined && subs.length === 1 && stored.qos === 1 && brokerCounter !== null && brokerId !== null) {
      if (this.#hold(subs[0]!.clientId, stored, bytes, brokerId, brokerCounter, listener)) return undefined
    }
    const blob = encodePacket(stored)
    const drops: Array<{ clientId: string; count: number }> = []
    const work = (): void => {
      // The sessions that get a copy, one entry per copy; drop-oldest may delete rows here.
      const sessions = this.#sessionsScratch
      const added = this.#addedScratch
      sessions.length = 0
      added.length = 0
      for (const { clientId } of subs) {
        if (!this.#queues.fits(clientId, bytes, this.#limits)) {
          const room = this.#makeRoom(clientId, bytes)
          if (room.dropped > 0) drops.push({ clientId, count: room.dropped })
          if (!room.fits) {
            if (oneSession && this.#options.queuePolicy === 'refuse') {
              this.#reportDrop('queue_full', 1, clientId)
              throw new QueueFullError(clientId, this.#limitText())
            }
            drops.push({ clientId, count: 1 })
            continue
          }
        }
        sessions.push(this.#sessionFor(clientId))
        // counted at once: a session listed twice is checked with its first copy included
        this.#queues.add(clientId, bytes)
        added.push(clientId)
      }
      if (sessions.length === 0) return
      // The packet is stored once, then one row per copy, deferred to multi-row statements. No
      // savepoint (it would cost about two thirds of the enqueue): the only exception thrown here
      // (QueueFullError) comes before anything is written, and a failed deferred insert fails the
      // commit, whose rollback also rebuilds the queue accounting.
      const body = this.#allocateBody(Math.ceil(sessions.length / SEQ_PER_BODY))
      this.#deferredBodies.push(body, brokerId, brokerCounter, sessions.length, bytes, blob)
      const oneEach = this.#deferCopies(body, sessions, added, bytes)
      if (oneEach && brokerCounter !== null && brokerId === this.#broker?.id) this.#hintLiveCopies(body, sessions, added, brokerId, brokerCounter, bytes, blob)
      if (this.#deferredCopies.length >= 2 * INSERT_ROWS_MAX || this.#deferredBodies.length >= BODY_VALUES * INSERT_ROWS_MAX) {
        this.#insertDeferred(false) // the runs grow until the commit: fewer, longer ones
      }
    }
    let done: Promise<void>
    if (listener === undefined) {
      done = this.#writeDeferring(work)
    } else {
      // the patched aedes's path (outgoingEnqueueCombiNotify): no promise per message
      const commit = this.#openCommit()
      commit.apply(work)
      if (drops.length === 0) return void commit.notify(listener)
      done = commit.join()
    }
    // the work above ran already: drops are known, reported once they are committed
    if (drops.length === 0) return done
    return done.then(() => {
      for (const drop of drops) this.#reportDrop('queue_full', drop.count, drop.clientId)
    })
  }

  /**
   * Where the connected sessions' copies of one message of this broker are (one copy each, at
   * seq body * SEQ_PER_BODY), so that their deliveries and acknowledgements find them by key,
   * not by a search on the broker counter. `sessions` and `clientIds` are parallel.
   */
  #hintLiveCopies(body: number, sessions: readonly number[], clientIds: readonly string[], brokerId: string, brokerCounter: number, bytes: number, blob: Buffer): void {
    const seq = body * SEQ_PER_BODY
    let hinted = false
    for (let i = 0; i < sessions.length; i++) {
      if (!this.#connected.has(clientIds[i] as string)) continue
      // one session: its body by broker counter (no key string to build); several: the seq by session
      if (sessions.length === 1) this.#hints.queued(brokerCounter, body)
      else this.#hints.streamed(sessions[i] as number, brokerId, brokerCounter, seq)
      hinted = true
    }
    if (hinted) this.#hints.copy(seq, bytes, blob)
  }

  /**
   * Holds a QoS 1 message for one connected session of this broker, if its queue has room: its
   * live delivery comes next, and a PUBACK within the ack window after it means it is never
   * written.
   * false when it does not qualify (it then takes the usual path).
   */
  #hold(clientId: string, stored: PacketLike, bytes: number, brokerId: string, brokerCounter: number, listener: StoredListener): boolean {
    if (this.#options.ackWindowMs === 0 || this.#held.size >= HELD_MAX || brokerId !== this.#broker?.id || !this.#connected.has(clientId)) {
      return false
    }
    // a second variant of one message (one per session) takes the usual path
    if (!this.#queues.fits(clientId, bytes, this.#limits) || this.#held.unsent(brokerCounter) !== undefined) return false
    this.#statements()
    // no transaction unless the session needs its row (its first queued message)
    const session = this.#sessionIds.get(clientId) ?? (this.#commit as GroupCommit).apply(() => this.#sessionFor(clientId))
    const body = this.#allocateBody(1)
    this.#queues.add(clientId, bytes)
    this.#held.hold({ body, session, brokerId, brokerCounter, bytes, packet: stored, listener }, Date.now())
    return true
  }

  /**
   * Defers the rows of one message: seq body * SEQ_PER_BODY + k for a session's k-th copy (a
   * session listed twice gets two), body left NULL (it is seq / SEQ_PER_BODY) up to SEQ_PER_BODY
   * copies. true when every session got one copy, at seq body * SEQ_PER_BODY: then the copies of
   * offline sessions go into their pending runs instead (#insertDeferred writes them). `clientIds`
   * parallels `sessions`.
   */
  #deferCopies(body: number, sessions: readonly number[], clientIds: readonly string[], bytes: number): boolean {
    const base = body * SEQ_PER_BODY
    const deferred = this.#deferredCopies
    if (sessions.length === 1 || this.#allDistinct(sessions)) {
      // the usual fan-out: one copy per session, no counting
      for (let i = 0; i < sessions.length; i++) {
        const session = sessions[i] as number
        if (this.#connected.has(clientIds[i] as string)) {
          deferred.push(session, base)
        } else {
          this.#pendingRuns.add(session, base, bytes)
        }
      }
      return true
    }
    const copies = this.#copies
    copies.clear()
    for (const session of sessions) {
      const copy = copies.get(session) ?? 0
      copies.set(session, copy + 1)
      if (copy < SEQ_PER_BODY) {
        deferred.push(session, base + copy)
        continue
      }
      // a session listed more than SEQ_PER_BODY times: its row names the body (inserted first)
      this.#insertDeferred()
      this.#statements().outgoingInsertDisplaced.run(session, base + copy, body)
    }
    return false
  }

  /** Whether no session id is listed twice: one stamp per id, no hashing (ids are small integers). */
  #allDistinct(sessions: readonly number[]): boolean {
    if (this.#seen.length < this.#nextSession) {
      const grown = new Uint32Array(Math.max(this.#nextSession * 2, 64))
      grown.set(this.#seen)
      this.#seen = grown
    }
    if (this.#stamp === 0xffffffff) {
      this.#seen.fill(0)
      this.#stamp = 0
    }
    const stamp = ++this.#stamp
    const seen = this.#seen
    for (const session of sessions) {
      if (seen[session] === stamp) return false
      seen[session] = stamp
    }
    return true
  }

  /**
   * Checks a session's limits for one more message of `bytes`, deleting its oldest queued
   * messages under 'drop-oldest'. `dropped` counts deleted rows; `fits` says whether to queue.
   */
  #makeRoom(clientId: string, bytes: number): { fits: boolean; dropped: number } {
    if (this.#queues.fits(clientId, bytes, this.#limits)) return { fits: true, dropped: 0 }
    const { maxMessages, maxBytes } = this.#limits
    if (this.#options.queuePolicy === 'refuse' || (maxBytes > 0 && bytes > maxBytes)) return { fits: false, dropped: 0 }
    const sql = this.#statements()
    const session = this.#sessionIds.get(clientId)
    const offline = !this.#connected.has(clientId)
    let dropped = 0
    while (session !== undefined && !this.#queues.fits(clientId, bytes, this.#limits)) {
      let oldest = offline ? this.#oldestQueued.get(clientId) : undefined
      if (oldest === undefined || oldest.length === 0) {
        this.#writeAllHeld() // the oldest rows may be among them
        this.#insertDeferred()
        this.#materializeRuns(session, Infinity) // and so may its runs
        const usage = this.#queues.usage(clientId)
        const excess = maxMessages > 0 ? Math.max(1, usage.count + 1 - maxMessages) : 1
        // .all() (never .iterate()) because the rows are deleted while the result is walked. An
        // offline session's full queue drops one row per message that comes: read well ahead
        // (reading 64 rows to delete one made such an enqueue ten times slower).
        oldest = sql.outgoingOldestQueued.all(session, Math.min(excess + (offline ? OLDEST_READ_AHEAD : 63), 1024)).reverse()
        if (oldest.length === 0) break
        if (offline) this.#oldestQueued.set(clientId, oldest)
      }
      while (oldest.length > 0 && !this.#queues.fits(clientId, bytes, this.#limits)) {
        const row = oldest.pop() as { seq: number; bytes: number }
        // a row read ahead may have gone since (the session's queue was emptied)
        if (sql.outgoingDeleteQueued.run(session, row.seq).changes === 0) continue
        this.#queues.remove(clientId, row.bytes, false)
        dropped++
      }
    }
    return { fits: this.#queues.fits(clientId, bytes, this.#limits), dropped }
  }

  /**
   * outgoingUpdate without a promise, for the patched aedes: true when the packet id went to a
   * message held for its PUBACK (nothing to write), false when the caller must call
   * outgoingUpdate.
   */
  outgoingUpdateNow(client: ClientRef, packet: PacketLike): boolean {
    if (this.#state !== 'open') return false
    const session = this.#sessionIds.get(client.id)
    return session !== undefined && this.#updateHeld(client.id, session, packet)
  }

  /** A live delivery of a held message: it will be written with its packet id, or never. */
  #updateHeld(clientId: string, session: number, packet: PacketLike): boolean {
    if (this.#held.size === 0 || typeof packet.messageId !== 'number' || typeof packet.brokerCounter !== 'number') return false
    if (packet.brokerId !== this.#broker?.id) return false
    const held = this.#held.unsent(packet.brokerCounter)
    if (held === undefined || held.session !== session) return false
    if (!this.#held.markSent(held, packet.messageId, Date.now())) return false
    this.#queues.change(clientId, 0, false, true)
    return true
  }

  /**
   * outgoingClearMessageId without a promise, for the patched aedes: the acknowledged message if
   * it was held (nothing to write), null when the client has no stored session (a clean one),
   * undefined when the caller must call outgoingClearMessageId.
   */
  outgoingClearMessageIdNow(client: ClientRef, packet: PacketLike): StoredObject | null | undefined {
    if (this.#state !== 'open') return undefined
    const session = this.#sessionIds.get(client.id)
    if (session === undefined) return null
    return this.#releaseHeld(client.id, session, packet)
  }

  /** An acknowledgement of a held message: it is forgotten, never written. */
  #releaseHeld(clientId: string, session: number, packet: PacketLike): StoredObject | undefined {
    if (this.#held.size === 0 || typeof packet.messageId !== 'number') return undefined
    const held = this.#held.release(session, packet.messageId)
    if (held === undefined) return undefined
    // acknowledged within its window: nothing to write, and its publisher may have its PUBACK
    this.#queues.remove(clientId, held.bytes, true)
    held.listener.stored(null)
    // the store's own copy (made in #enqueue) is handed over as it is: no clone per acknowledgement
    const acknowledged = held.packet as PacketLike
    acknowledged.messageId = packet.messageId
    return acknowledged as StoredObject
  }

  /**
   * Records the packet id given to a queued message (matched by brokerId + brokerCounter), or
   * replaces the message with the same packet id by `packet` (a PUBREL after PUBREC). A packet
   * that is not stored (never queued because the session's queue was full) is not an error: aedes
   * answers an error here by disconnecting the subscriber, and the delivery simply is not durable.
   */
  async outgoingUpdate(client: ClientRef, packet: PacketLike): Promise<void> {
    const sql = this.#statements()
    const session = this.#sessionIds.get(client.id)
    if (session === undefined) return
    if (this.#updateHeld(client.id, session, packet)) return
    const messageId = typeof packet.messageId === 'number' ? packet.messageId : null
    const brokerId = typeof packet.brokerId === 'string' ? packet.brokerId : null
    const brokerCounter = typeof packet.brokerCounter === 'number' ? packet.brokerCounter : null
    // a row read ahead as queued may be in flight now, or queued again
    if (this.#oldestQueued.size > 0) this.#oldestQueued.delete(client.id)
    // a message queued for this one session and not sent yet (every live delivery: a numeric
    // key), or a copy the session's queue stream just handed out: its row is known
    let seq: number | undefined
    if (brokerId !== null && brokerCounter !== null) {
      const own = brokerId === this.#broker?.id
      const body = own ? this.#hints.takeQueued(brokerCounter) : undefined
      seq = body !== undefined ? body * SEQ_PER_BODY : this.#hints.takeStreamed(session, brokerId, brokerCounter)
    }
    // a known row is not a held one; the searches below must see every row
    return this.#write(() => {
      if (brokerId !== null && brokerCounter !== null) {
        if (seq !== undefined && sql.outgoingSetMessageIdIfQueued.run(messageId, session, seq).changes === 1) {
          this.#queues.change(client.id, 0, false, messageId !== null)
          if (messageId !== null) this.#hints.inFlight(session, messageId, seq)
          return
        }
        const row = this.#searchingRuns(session, () => sql.outgoingByCounter.get({ session, brokerCounter, brokerId }))
        if (row) {
          sql.outgoingSetMessageId.run(messageId, session, row.seq)
          this.#queues.change(client.id, 0, row.message_id !== null, messageId !== null)
          if (messageId !== null) this.#hints.inFlight(session, messageId, row.seq)
          return
        }
      }
      if (messageId === null) return
      const row = sql.outgoingByMessageIdOtherBroker.get(session, messageId, brokerId)
      if (!row) return
      const bytes = payloadBytes(packet)
      const body = this.#allocateBody(1)
      sql.bodyInsert.run(body, brokerId, brokerCounter, 1, bytes, encodePacket(packet))
      sql.outgoingReplace.run(messageId, body, session, row.seq)
      this.#hints.forgetCopy(row.seq)
      this.#queues.change(client.id, bytes - row.bytes, row.message_id !== null, true)
    }, true, seq === undefined)
  }

  /**
   * Deletes and returns the message (or PUBREL) with this packet id. Without a packet id it
   * deletes one queued (id-less) copy: the one with the packet's brokerId + brokerCounter if the
   * packet has them (aedes drops an extra copy this way), else the oldest. Resolves undefined if
   * nothing matches; never rejects for that.
   */
  async outgoingClearMessageId(
    client: ClientRef,
    packet: PacketLike | number | undefined,
  ): Promise<StoredObject | undefined> {
    const sql = this.#statements()
    const p: PacketLike = typeof packet === 'object' && packet !== null ? packet : {}
    const session = this.#sessionIds.get(client.id)
    if (session === undefined) return undefined
    const acknowledged = this.#releaseHeld(client.id, session, p)
    if (acknowledged !== undefined) return acknowledged
    // aedes clears a copy it does not deliver (No Local) by its broker counter
    const unsent = typeof p.messageId !== 'number' && typeof p.brokerCounter === 'number' && p.brokerId === this.#broker?.id
      ? this.#held.unsent(p.brokerCounter)
      : undefined
    if (unsent !== undefined && unsent.session === session) {
      this.#held.dropUnsent(unsent)
      this.#queues.remove(client.id, unsent.bytes, false)
      unsent.listener.stored(null)
      return unsent.packet as StoredObject
    }
    const seq = typeof p.messageId === 'number' ? this.#hints.takeInFlight(session, p.messageId) : undefined
    return this.#write(
      () => {
        let row: OutgoingRow | undefined
        if (typeof p.messageId === 'number') {
          if (seq !== undefined) {
            // the usual acknowledgement: the row is known, delete it without reading it
            const known = this.#hints.takeCopy(seq)
            if (known !== undefined && sql.outgoingDeleteInFlight.run(session, seq, p.messageId).changes === 1) {
              this.#queues.remove(client.id, known.bytes, true)
              return decodeOutgoing({ seq, message_id: p.messageId, bytes: known.bytes, packet: known.packet })
            }
            row = sql.outgoingAtSeq.get(session, seq)
          }
          // (a copy with a packet id is never in a run)
          if (row?.message_id !== p.messageId) row = sql.outgoingFindByMessageId.get(session, p.messageId)
        } else if (typeof p.brokerId === 'string' && typeof p.brokerCounter === 'number') {
          const byCounter = { session, brokerCounter: p.brokerCounter, brokerId: p.brokerId }
          row = this.#searchingRuns(session, () => sql.outgoingFindQueuedByCounter.get(byCounter))
        } else {
          // the oldest queued copy may be in a run even when rows are queued
          this.#materializeRuns(session, Infinity)
          row = sql.outgoingFindFirstQueued.get(session)
        }
        if (!row) return undefined
        sql.outgoingDeleteSeq.run(session, row.seq)
        this.#queues.remove(client.id, row.bytes, row.message_id !== null)
        return decodeOutgoing(row)
      },
      true,
      seq === undefined,
    )
  }

  /**
   * The session's queue in order, PUBREL records included, read in pages. Only rows present when
   * the stream is created are returned: messages queued later reach a connected client directly.
   */
  outgoingStream(client: ClientRef): Readable {
    if (this.#state !== 'open') return this.#closedStream()
    const session = this.#sessionIds.get(client.id)
    if (session === undefined) return Readable.from([])
    const upTo = this.#nextBody * SEQ_PER_BODY - 1
    return pagedStream(this.#outgoingPages(client.id, session, upTo))
  }

  /** The session's queue page by page (what outgoingStream reads). */
  async *#outgoingPages(clientId: string, session: number, upTo: number): AsyncGenerator<StoredObject[]> {
    const { pageSize } = this.#options
    let after = -1
    // a held message of this session belongs in the stream
    this.#writeAllHeld()
    for (;;) {
      // Copies still in runs become rows a page ahead of the reader, oldest first; rows past the
      // first run left (queued later) wait until it is a row too.
      let bound = upTo
      if (this.#hasRuns(session)) {
        const firstInRun = await this.#write(() => this.#materializeRuns(session, pageSize), true)
        if (firstInRun !== undefined) bound = Math.min(upTo, firstInRun - 1)
      }
      const sql = await this.#readable()
      const rows = sql.outgoingPage.all(session, after, bound, pageSize)
      const last = rows.at(-1)
      if (last === undefined) {
        if (bound === upTo) return
        continue
      }
      after = last.seq
      const now = Date.now()
      const expired: OutgoingRow[] = []
      const packets: StoredObject[] = []
      for (const row of rows) {
        const packet = decodeOutgoing(row)
        const expiry = packet.messageExpiry
        if (typeof expiry === 'number') {
          // [MQTT-3.3.2-5] an expired message whose delivery has not started is deleted; one in
          // flight (it has a packet id) must still be completed.
          if (expiry <= now && row.message_id === null) {
            expired.push(row)
            continue
          }
          // [MQTT-3.3.2-6] the interval sent is the time left
          const properties = (packet.properties ?? {}) as Record<string, unknown>
          packet.properties = { ...properties, messageExpiryInterval: Math.max(0, Math.ceil((expiry - now) / 1000)) }
        }
        // its update (the packet id it goes out with) comes next
        if (row.message_id === null && typeof packet.brokerId === 'string' && typeof packet.brokerCounter === 'number') {
          this.#hints.streamed(session, packet.brokerId, packet.brokerCounter, row.seq)
        }
        this.#hints.copy(row.seq, row.bytes, row.packet)
        packets.push(packet)
      }
      if (expired.length > 0) this.#deleteExpired(clientId, session, expired)
      yield packets
      if (rows.length < pageSize && bound === upTo) return
    }
  }

  #deleteExpired(clientId: string, session: number, rows: readonly OutgoingRow[]): void {
    const sql = this.#statements()
    let deleted = 0
    this.#write(() => {
      for (const row of rows) {
        if (sql.outgoingDeleteSeq.run(session, row.seq).changes === 0) continue
        this.#queues.remove(clientId, row.bytes, false)
        deleted++
      }
    }).then(
      () => deleted > 0 && this.#reportDrop('expired', deleted, clientId),
      (err: unknown) => this.#options.logger?.warn({ err, clientId }, 'could not delete expired queued messages'),
    )
  }

  // ---------------------------------------------------------------- incoming QoS 2

  async incomingStorePacket(client: ClientRef, packet: PacketLike): Promise<void> {
    const sql = this.#statements()
    const messageId = Number(packet.messageId)
    const stored = new AedesPacket(packet)
    stored.messageId = packet.messageId
    const blob = encodePacket(stored)
    return this.#write(() => {
      sql.incomingUpsert.run(client.id, messageId, blob)
    }, true, false)
  }

  /** Rejects with NoSuchPacketError when missing: aedes takes that as "a new packet". */
  async incomingGetPacket(client: ClientRef, packet: PacketLike): Promise<StoredObject> {
    const sql = await this.#readable()
    const row = sql.incomingGet.get(client.id, Number(packet.messageId))
    if (!row) throw new NoSuchPacketError()
    return decodePacket(row.packet)
  }

  async incomingDelPacket(client: ClientRef, packet: PacketLike): Promise<void> {
    const sql = this.#statements()
    return this.#write(() => {
      if (sql.incomingDelete.run(client.id, Number(packet.messageId)).changes === 0) throw new NoSuchPacketError()
    }, true, false)
  }

  /** Forgets a client's incoming QoS 2 packets (its session ended); not called by the beta itself. */
  async cleanIncoming(client: ClientRef): Promise<void> {
    const sql = this.#statements()
    return this.#write(() => {
      sql.incomingDeleteClient.run(client.id)
    }, true, false)
  }

  // ---------------------------------------------------------------- wills

  /** Stores the client's will, stamped (as aedes expects) with this broker's id and the client id. */
  async putWill(client: ClientRef, packet: PacketLike): Promise<void> {
    const sql = this.#statements()
    const brokerId = (this.#broker as BrokerRef).id
    packet.brokerId = brokerId
    packet.clientId = client.id
    const blob = encodePacket(packet)
    return this.#write(() => {
      sql.willUpsert.run(client.id, brokerId, blob)
    }, true, false)
  }

  async getWill(client: ClientRef): Promise<StoredObject | undefined> {
    const sql = await this.#readable()
    const row = sql.willGet.get(client.id)
    return row ? decodePacket(row.packet) : undefined
  }

  async delWill(client: ClientRef): Promise<StoredObject | undefined> {
    const sql = this.#statements()
    return this.#write(() => {
      const row = sql.willDelete.get(client.id)
      return row ? decodePacket(row.packet) : undefined
    }, true, false)
  }

  /** Wills whose broker is not in `brokers` (alive brokers by id): those aedes must publish. */
  streamWill(brokers: Readonly<Record<string, unknown>> = {}): Readable {
    if (this.#state !== 'open') return this.#closedStream()
    const that = this
    return Readable.from(
      (async function* orphanWills() {
        const sql = await that.#readable()
        for (const row of sql.willsAll.all()) {
          const alive = Object.hasOwn(brokers, row.broker_id) && Boolean(brokers[row.broker_id])
          if (!alive) yield decodePacket(row.packet)
        }
      })(),
    )
  }

  // ---------------------------------------------------------------- mqlite sessions

  /** Records a session as connected (clearing any pending expiry). */
  async sessionConnected(clientId: string, info: SessionInfo, atMs: number = Date.now()): Promise<void> {
    const sql = this.#statements()
    return this.#write(() => {
      const existed = sql.sessionExists.get(clientId) !== undefined
      sql.sessionUpsert.run(clientId, info.protocolVersion, info.expiryIntervalSeconds, atMs)
      if (!existed) this.#sessionCount++
      this.#connected.add(clientId)
      this.#oldestQueued.delete(clientId)
    }, true, false)
  }

  /** Starts a session's expiry clock; a session never recorded as connected is ignored. */
  async sessionDisconnected(clientId: string, atMs: number = Date.now()): Promise<void> {
    const sql = this.#statements()
    return this.#write(() => {
      sql.sessionDisconnect.run({ clientId, at: atMs, never: SESSION_NEVER_EXPIRES })
      this.#connected.delete(clientId)
      this.#oldestQueued.delete(clientId)
    }, true)
  }

  /** Client ids of disconnected sessions whose expiry is due at `nowMs` (soonest first). */
  expiredSessions(nowMs: number = Date.now()): string[] {
    return this.#statements().sessionsExpired.all(nowMs).map((row) => row.client_id)
  }

  /** Deletes everything of a session: subscriptions, queue, incoming QoS 2 state, will, record. */
  async deleteSession(clientId: string): Promise<void> {
    const sql = this.#statements()
    return this.#write(() => {
      sql.subscriptionsDeleteClient.run(clientId)
      const session = this.#sessionIds.get(clientId)
      if (session !== undefined) {
        // as rows, so that the trigger releases their bodies
        this.#materializeRuns(session, Infinity)
        sql.outgoingDeleteSession.run(session)
        sql.clientDelete.run(session)
      }
      sql.incomingDeleteClient.run(clientId)
      sql.willDeleteClient.run(clientId)
      if (sql.sessionDelete.run(clientId).changes > 0) this.#sessionCount--
      this.#index.removeClient(clientId)
      this.#queues.removeClient(clientId)
      this.#sessionIds.delete(clientId)
      this.#connected.delete(clientId)
      this.#oldestQueued.delete(clientId)
    })
  }

  /** Sizes from in-memory counters and two pragmas: cheap enough for a metrics scrape. */
  stats(): StoreStats {
    const db = this.#database()
    const pageCount = Number(db.pragma('page_count', { simple: true }))
    const pageSize = Number(db.pragma('page_size', { simple: true }))
    return {
      retained: this.#retainedCount,
      subscriptions: this.#index.totalCount,
      queued: this.#queues.queued,
      inflight: this.#queues.inflight,
      dbBytes: pageCount * pageSize + this.#walBytes(),
      sessions: this.#sessionCount,
      held: { acknowledged: this.#held.acknowledged, written: this.#held.written },
    }
  }

  // ---------------------------------------------------------------- lifecycle

  /** Commits every pending write. Rejects if that commit fails. */
  flush(): Promise<void> {
    if (this.#state !== 'open') return Promise.resolve()
    this.#writeAllHeld()
    return (this.#commit as GroupCommit).flush()
  }

  /** Commits pending writes and closes the database. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown()
    return this.#closing
  }

  /** The aedes name for close(). */
  destroy(): Promise<void> {
    return this.close()
  }

  async #shutdown(): Promise<void> {
    if (this.#state !== 'open') {
      this.#state = 'closed'
      return
    }
    this.#writeAllHeld()
    this.#held.close()
    this.#state = 'closing'
    try {
      await (this.#commit as GroupCommit).flush()
    } catch (err) {
      this.#options.logger?.error({ err }, 'final store commit failed')
    } finally {
      this.#db?.close()
      this.#state = 'closed'
    }
  }

  // ---------------------------------------------------------------- internals

  #statements(): Statements {
    if (this.#state !== 'open' || !this.#sql) throw new StoreClosedError(this.#state === 'new' ? 'not set up' : this.#state)
    return this.#sql
  }

  /** Streams error rather than throw: aedes pipes them without a try/catch. */
  #closedStream(): Readable {
    const error = new StoreClosedError(this.#state === 'new' ? 'not set up' : this.#state)
    return Readable.from(
      (async function* closed(): AsyncGenerator<never> {
        throw error
      })(),
    )
  }

  #database(): Database {
    this.#statements()
    return this.#db as Database
  }

  /** Statements for a read, once no uncommitted write is pending. */
  async #readable(): Promise<Statements> {
    await (this.#commit ?? { settled: () => Promise.resolve() }).settled()
    return this.#statements()
  }

  /** The session id of a client, created (inside the current write) on its first queued row. */
  #sessionFor(clientId: string): number {
    let session = this.#sessionIds.get(clientId)
    if (session === undefined) {
      session = this.#nextSession++
      this.#statements().clientInsert.run(session, clientId)
      this.#sessionIds.set(clientId, session)
    }
    return session
  }

  /** `span` consecutive body ids, the first one for the body: its copies have span * SEQ_PER_BODY seqs. */
  #allocateBody(span: number): number {
    const body = this.#nextBody
    this.#nextBody += span
    return body
  }

  /**
   * `single`: the work makes at most one write statement, so it needs no savepoint of its own.
   * The deferred enqueues go in first, outside that savepoint: the work may read or delete them;
   * so do the held messages, unless the work touches no queue or only rows it knows (`withHeld`
   * false: connections, subscriptions, wills and retained messages come and go without writing
   * the messages that wait for their PUBACK).
   */
  #write<T>(work: () => T, single = false, withHeld = true): Promise<T> {
    try {
      this.#statements()
    } catch (err) {
      return Promise.reject(err as Error)
    }
    if (withHeld) this.#writeAllHeld()
    this.#insertDeferred()
    return (this.#commit as GroupCommit).run(work, !single)
  }

  /** Every held message goes into the open batch: something is about to read or change queues. */
  #writeAllHeld(): void {
    if (this.#held.size > 0) (this.#commit as GroupCommit).apply(() => this.#writeHeld(this.#held.takeAll()))
  }

  /**
   * Read by the patched aedes once a publish's live deliveries are done and its publisher waits
   * for its copies: a held copy that did not go out (its subscriber's Receive Maximum is reached,
   * or it was not delivered live) is written now rather than keep the publisher waiting.
   */
  outgoingAwaited(packet: PacketLike): void {
    if (this.#held.size === 0 || this.#state !== 'open' || typeof packet.brokerCounter !== 'number') return
    if (packet.brokerId !== this.#broker?.id) return
    const held = this.#held.unsent(packet.brokerCounter)
    if (held !== undefined) (this.#commit as GroupCommit).apply(() => this.#writeHeld([this.#held.takeUnsent(held)]))
  }

  /** The ack window's timer: the messages whose window passed go into a batch. */
  #writeDueHeld(): void {
    if (this.#state !== 'open') return
    const due = this.#held.takeDue(Date.now())
    if (due.length > 0) (this.#commit as GroupCommit).apply(() => this.#writeHeld(due))
  }

  /**
   * Defers the rows of held messages (taken from #held) into the open batch: from its commit on
   * they are ordinary queued or in-flight rows, and their publishers get their PUBACK.
   */
  #writeHeld(messages: readonly HeldMessage[]): void {
    if (messages.length === 0) return
    for (const held of messages) {
      const seq = held.body * SEQ_PER_BODY
      // encoded only now: most held messages are never written
      const blob = encodePacket(held.packet)
      this.#deferredBodies.push(held.body, held.brokerId, held.brokerCounter, 1, held.bytes, blob)
      this.#deferredSent.push(held.session, seq, held.messageId)
      this.#hints.copy(seq, held.bytes, blob)
      // its delivery, still to come, or its acknowledgement finds the row
      if (held.messageId === null) this.#hints.queued(held.brokerCounter, held.body)
      else this.#hints.inFlight(held.session, held.messageId, seq)
    }
    const committed = (this.#commit as GroupCommit).join()
    committed.then(
      () => tellStored(messages, null),
      (err: Error) => tellStored(messages, err),
    )
  }

  /** #write for the enqueue, which adds to the deferred rows instead of inserting them first. */
  #writeDeferring<T>(work: () => T): Promise<T> {
    try {
      return this.#openCommit().run(work, false) // no savepoint: see #enqueue
    } catch (err) {
      return Promise.reject(err as Error)
    }
  }

  /** The group commit; throws StoreClosedError unless the store is open. */
  #openCommit(): GroupCommit {
    this.#statements()
    return this.#commit as GroupCommit
  }

  /**
   * Inserts the deferred rows (and, with `runs`, the pending runs); a failure is kept for the
   * batch's COMMIT, which then fails. A pending run only names bodies, which go in first.
   */
  #insertDeferred(runs = true): void {
    const bodies = this.#deferredBodies
    const copies = this.#deferredCopies
    const sent = this.#deferredSent
    if (bodies.length === 0 && copies.length === 0 && (!runs || this.#pendingRuns.size === 0)) return
    try {
      for (const rows of chunks(bodies, BODY_VALUES * INSERT_ROWS_MAX)) {
        runInserts(this.#insertBodies(rows.length / BODY_VALUES), rows, rows.length / BODY_VALUES)
      }
      const sql = this.#sql as Statements
      for (const run of runs ? this.#pendingRuns.take() : []) {
        const { session, seqs } = run
        if (seqs.length < RUN_MIN_COPIES) {
          for (const seq of seqs) copies.push(session, seq)
          continue
        }
        sql.runInsert.run(session, seqs[0] as number, seqs.at(-1) as number, seqs.length, run.bytes, encodeSeqs(seqs))
        this.#runSessions.add(session)
      }
      this.#insertSessionRows(copies)
      for (const rows of chunks(sent, 3 * INSERT_ROWS_MAX)) runInserts(this.#insertSentRows(rows.length / 3), rows, rows.length / 3)
    } catch (err) {
      this.#deferredError ??= err
    } finally {
      bodies.length = 0
      copies.length = 0
      sent.length = 0
      if (runs) this.#pendingRuns.clear()
    }
  }

  /** Inserts queued rows given as (session, seq) pairs, INSERT_ROWS_MAX at a time. */
  #insertSessionRows(pairs: number[]): void {
    for (const rows of chunks(pairs, 2 * INSERT_ROWS_MAX)) runInserts(this.#insertRows(rows.length / 2), rows, rows.length / 2)
  }

  /** Whether some of the session's copies are in runs, written or still pending. */
  #hasRuns(session: number): boolean {
    return this.#runSessions.has(session) || this.#pendingRuns.has(session)
  }

  /** A search of the session's rows, repeated once its runs are rows if it found nothing. */
  #searchingRuns<T>(session: number, search: () => T | undefined): T | undefined {
    const found = search()
    if (found !== undefined || !this.#hasRuns(session)) return found
    this.#materializeRuns(session, Infinity)
    return search()
  }

  /**
   * Turns the session's oldest runs into outgoing rows, whole runs until at least `minCopies`
   * copies moved (Infinity: all of them), in a savepoint of its own: a failure leaves the runs as
   * they were. The references the copies hold on their bodies move with them. Returns the first
   * seq still in a run, undefined when none is left.
   */
  #materializeRuns(session: number, minCopies: number): number | undefined {
    if (!this.#hasRuns(session)) return undefined
    const sql = this.#statements()
    this.#insertDeferred() // the session's pending run goes in first (as a run or as rows)
    if (!this.#runSessions.has(session)) return undefined
    sql.runsSavepoint.run()
    try {
      let moved = 0
      while (moved < minCopies) {
        const runs = sql.runsOldest.all(session, RUNS_PER_READ)
        if (runs.length === 0) break
        const rows: number[] = []
        let lastFirstSeq = -1
        for (const run of runs) {
          const seqs = decodeSeqs(run.seqs)
          if (seqs.length !== run.copies) {
            throw new Error(`the queued run at seq ${run.first_seq} of session ${session} lists ${seqs.length} copies, its row says ${run.copies}`)
          }
          for (const seq of seqs) rows.push(session, seq)
          moved += run.copies
          lastFirstSeq = run.first_seq
          if (moved >= minCopies) break
        }
        this.#insertSessionRows(rows)
        sql.runsDeleteUpTo.run(session, lastFirstSeq)
      }
      const next = sql.runFirstSeq.get(session)?.first_seq
      sql.runsRelease.run()
      if (next === undefined) this.#runSessions.delete(session)
      return next
    } catch (err) {
      sql.runsRollback.run()
      sql.runsRelease.run()
      throw err
    }
  }

  /** (Re)builds every in-memory view from the database: at setup and after a failed commit. */
  #loadState(): void {
    const sql = this.#sql as Statements
    this.#hints.clear()
    this.#oldestQueued.clear()
    this.#index.clear()
    for (const row of sql.subscriptionsAll.all()) {
      const sub = decodePacket(row.sub) as unknown as SubscriptionLike
      this.#index.add(row.client_id, { ...sub, qos: sub.qos ?? 0 })
    }
    const usage = sql.outgoingUsage.all()
    this.#queues.reset(usage)
    this.#runSessions.clear()
    for (const row of sql.runSessions.all()) this.#runSessions.add(row.session)
    this.#sessionIds.clear()
    for (const row of sql.clientsAll.all()) {
      this.#sessionIds.set(row.client_id, row.id)
      this.#nextSession = Math.max(this.#nextSession, row.id + 1)
    }
    const maxSeq = usage.reduce((max, row) => Math.max(max, row.max_seq), 0)
    const maxBody = sql.bodyMaxId.get()?.id ?? 0
    this.#nextBody = Math.max(this.#nextBody, maxBody + 1, Math.floor(maxSeq / SEQ_PER_BODY) + 1)
    this.#retainedCount = sql.retainedCount.get()?.n ?? 0
    this.#sessionCount = sql.sessionCount.get()?.n ?? 0
  }

  /**
   * After a restart: no client is connected, so sessions still marked connected (the broker was
   * killed) start their expiry now; and a fixed broker id restarts aedes's packet counter at 0,
   * which would make new messages collide with queued ones on brokerId + brokerCounter, so the
   * counter resumes above the highest one stored.
   */
  #recoverAfterRestart(broker: BrokerRef): void {
    const sql = this.#sql as Statements
    sql.sessionsDisconnectAll.run({ at: Date.now(), never: SESSION_NEVER_EXPIRES })
    const stored = sql.outgoingMaxCounter.get(broker.id)?.counter ?? 0
    if (typeof broker.counter === 'number' && broker.counter < stored) broker.counter = stored
  }

  #reportDrop(reason: DropReason, count: number, clientId: string): void {
    try {
      this.#options.onDrop?.(reason, count, clientId)
    } catch {
      // a metrics callback must not fail a store write
    }
  }

  #limitText(): string {
    const { maxMessages, maxBytes } = this.#limits
    return [maxMessages > 0 ? `${maxMessages} messages` : '', maxBytes > 0 ? `${maxBytes} bytes` : '']
      .filter(Boolean)
      .join(', ')
  }

  #walBytes(): number {
    if (this.#options.path === ':memory:') return 0
    try {
      return statSync(`${this.#options.path}-wal`).size
    } catch {
      return 0
    }
  }

  #countsForLog(): Record<string, number> {
    return {
      retained: this.#retainedCount,
      subscriptions: this.#index.totalCount,
      queued: this.#queues.queued,
      inflight: this.#queues.inflight,
    }
  }
}

/** A stored outgoing row as aedes expects it: the packet id lives in its own column. */
function decodeOutgoing(row: OutgoingRow): StoredObject {
  const packet = decodePacket(row.packet)
  packet.messageId = row.message_id ?? undefined
  return packet
}

/** `values` in slices of at most `size` (itself when it fits: the usual case, no copy); none if empty. */
function chunks<T>(values: T[], size: number): T[][] {
  if (values.length === 0) return []
  if (values.length <= size) return [values]
  const slices: T[][] = []
  for (let at = 0; at < values.length; at += size) slices.push(values.slice(at, at + size))
  return slices
}
