import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import { Redis, type RedisOptions } from 'ioredis'
import { NoSuchPacketError, QueueFullError, StoreClosedError, StoreUnavailableError } from './errors.js'
import { decodePacket, encodePacket, payloadBytes, type StoredObject } from './packet-codec.js'
import type { DropReason, StoreLogger } from './options.js'
import type { QueuePolicy } from './queue-accounting.js'
import * as scripts from './redis-scripts.js'
import { SESSION_NEVER_EXPIRES, type BrokerRef, type ClientRef, type PacketLike, type SessionInfo, type StoreStats, type SubscriptionLike } from './sqlite-persistence.js'
import { SubscriptionIndex, type MatchedSubscription } from './subscription-index.js'
import { hasWildcard, topicRange } from './topic-filter.js'
import { topicMatches } from '../mqtt/topic-match.js'

export interface RedisPersistenceOptions {
  /** redis://[user:password@]host:port[/db] or rediss:// */
  url: string
  /** prepended to every key and channel, so several clusters can share one Redis */
  keyPrefix: string
  /** this node's id: it marks the sessions connected here */
  nodeId: string
  /** how long setup() waits for Redis before failing */
  connectTimeoutMs: number
  maxQueuedMessages: number
  maxQueuedBytes: number
  queuePolicy: QueuePolicy
  /** rows per read when streaming a session's queue */
  pageSize?: number
  logger?: StoreLogger
  onDrop?: (reason: DropReason, count: number, clientId: string) => void
}

/** What a node learns from the others through the store's channel. */
type StoreChange =
  | { op: 'add'; clientId: string; subs: SubscriptionLike[] }
  | { op: 'rm'; clientId: string; topics: string[] }
  | { op: 'clean'; clientId: string }
type StoreEvent = StoreChange & { node: string }

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed'

type ScriptName = 'mqEnqueue' | 'mqUpdate' | 'mqClear' | 'mqPage' | 'mqDropQueued' | 'mqEmptyQueue' | 'mqDeleteWill' | 'mqClaimWill' | 'mqSessionDisconnected' | 'mqNodeGone' | 'mqClaimExpired' | 'mqDeleteSession'
type ScriptCall = (...args: Array<string | number | Buffer>) => Promise<unknown>
type Scripted = Redis & Record<ScriptName | `${ScriptName}Buffer`, ScriptCall>

const SCRIPTS: Record<ScriptName, string> = {
  mqEnqueue: scripts.ENQUEUE,
  mqUpdate: scripts.UPDATE,
  mqClear: scripts.CLEAR,
  mqPage: scripts.PAGE,
  mqDropQueued: scripts.DROP_QUEUED,
  mqEmptyQueue: scripts.EMPTY_QUEUE,
  mqDeleteWill: scripts.DELETE_WILL,
  mqClaimWill: scripts.CLAIM_WILL,
  mqSessionDisconnected: scripts.SESSION_DISCONNECTED,
  mqNodeGone: scripts.NODE_GONE,
  mqClaimExpired: scripts.CLAIM_EXPIRED,
  mqDeleteSession: scripts.DELETE_SESSION,
}

const require = createRequire(import.meta.url)
const AedesPacket = require('aedes-packet') as new (original: object, broker?: object) => PacketLike

/**
 * The aedes persistence for cluster mode: every node keeps sessions, subscriptions, queues,
 * in-flight state, retained messages and wills in one Redis, so a client may continue on any node.
 *
 * - Acknowledgements work on any node: a session's packet ids map to queue entries in Redis, not
 *   in a node's memory. Multi-key changes are Lua scripts (atomic, see redis-scripts.ts).
 * - Durability follows Redis's: each write is acknowledged by Redis before the promise resolves
 *   (and so before the broker acknowledges a publish); whether that survives a Redis crash is the
 *   Redis server's `appendonly`/`appendfsync` setting.
 * - Subscription matching is served from an in-memory index on every node, loaded at setup and
 *   kept in step through a pub/sub channel (reloaded whenever that channel reconnects).
 * - Retained wildcard reads walk a lexically sorted set of topics over the filter's literal prefix.
 * - A will of a dead node is taken (read and deleted in one script) by one survivor, once the
 *   owner's liveness key has lapsed, so exactly one publishes it; a takeover's late cleanup on
 *   the old node never deletes the new connection's will.
 * - Commands fail at once while Redis is unreachable (no offline queue): the broker refuses
 *   rather than acknowledges what it could not store. `ready` reports the connections' state.
 */
export class RedisPersistence {
  readonly #options: Required<Omit<RedisPersistenceOptions, 'logger' | 'onDrop'>> & Pick<RedisPersistenceOptions, 'logger' | 'onDrop'>
  readonly #index = new SubscriptionIndex()
  readonly #channel: string
  readonly #prefix: string
  #state: State = 'new'
  #redis: Scripted | undefined
  #events: Redis | undefined
  #broker: BrokerRef | undefined
  #ready = false
  #closing: Promise<void> | undefined

  constructor(options: RedisPersistenceOptions) {
    this.#options = { pageSize: 256, ...options }
    this.#prefix = options.keyPrefix
    this.#channel = `${options.keyPrefix}events`
  }

  get broker(): BrokerRef | undefined {
    return this.#broker
  }

  /** Both Redis connections are up: writes can be acknowledged. */
  get ready(): boolean {
    return this.#ready
  }

  /** Connection options shared by every Redis connection of a node (the message bus's too). */
  static connectionOptions(url: string, name: string): RedisOptions & { url: string } {
    return {
      url,
      connectionName: name,
      // refuse at once while disconnected: a queued command could run after the client gave up
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
      retryStrategy: (attempt) => Math.min(100 * attempt, 2000),
    }
  }

  /** Must stay a native async method: aedes checks `setup.constructor.name === 'AsyncFunction'`. */
  async setup(broker: BrokerRef): Promise<void> {
    if (this.#state !== 'new') throw new StoreClosedError(`already ${this.#state}`)
    this.#state = 'opening'
    const { url, nodeId, connectTimeoutMs, logger } = this.#options
    const { url: _url, ...options } = RedisPersistence.connectionOptions(url, `mqlite-${nodeId}`)
    // commands issued in the same tick go out as one pipeline: many sessions, few round trips
    const redis = new Redis(url, { ...options, enableAutoPipelining: true }) as Scripted
    const events = new Redis(url, { ...options, connectionName: `mqlite-${nodeId}-events` })
    this.#redis = redis
    this.#events = events
    for (const [name, lua] of Object.entries(SCRIPTS)) redis.defineCommand(name, { numberOfKeys: 0, lua })
    const onError = (err: Error): void => logger?.warn({ err: err.message }, 'Redis connection error')
    redis.on('error', onError)
    events.on('error', onError)
    try {
      await withTimeout(Promise.all([redis.connect(), events.connect()]), connectTimeoutMs, `cannot reach Redis at ${redactUrl(url)} within ${connectTimeoutMs} ms`)
      events.on('message', (_channel: string, message: string) => this.#apply(message))
      await events.subscribe(this.#channel)
      await this.#loadIndex()
      // a fixed node id restarts aedes's packet counter at 0; queued entries are keyed by
      // broker id + counter, so the counter resumes above the highest one queued
      const stored = Number((await redis.hget(`${this.#prefix}counters`, broker.id)) ?? 0)
      if (typeof broker.counter === 'number' && broker.counter < stored) broker.counter = stored
      this.#broker = broker
      // a previous run of this node was killed: its sessions start expiring now
      await redis.mqNodeGone(this.#prefix, nodeId, Date.now(), SESSION_NEVER_EXPIRES, '1')
    } catch (err) {
      redis.disconnect()
      events.disconnect()
      this.#state = 'closed'
      throw err
    }
    this.#ready = true
    this.#watchConnections(redis, events)
    this.#state = 'open'
    logger?.info({ redis: redactUrl(url), keyPrefix: this.#prefix, subscriptions: this.#index.totalCount }, 'Redis store open')
  }

  #watchConnections(redis: Redis, events: Redis): void {
    const update = (): void => {
      if (this.#state !== 'open') return
      const ready = redis.status === 'ready' && events.status === 'ready'
      if (ready === this.#ready) return
      this.#ready = ready
      if (!ready) {
        this.#options.logger?.warn({}, 'Redis unreachable: refusing writes until it is back')
        return
      }
      // subscription events published while we were away are lost: read the truth again
      this.#loadIndex().then(
        () => this.#options.logger?.info({}, 'Redis reachable again'),
        (err: unknown) => this.#options.logger?.error({ err }, 'cannot reload subscriptions from Redis'),
      )
    }
    for (const conn of [redis, events]) {
      conn.on('ready', update)
      conn.on('close', update)
      conn.on('end', update)
    }
  }

  async #loadIndex(): Promise<void> {
    const redis = this.#redis as Scripted
    const clients = await redis.smembers(`${this.#prefix}subs:clients`)
    const pipeline = redis.pipeline()
    for (const clientId of clients) pipeline.hgetall(`${this.#prefix}subs:${clientId}`)
    const results = clients.length > 0 ? ((await pipeline.exec()) ?? []) : []
    this.#index.clear()
    clients.forEach((clientId, i) => {
      const [err, subs] = results[i] ?? [null, {}]
      if (err) throw err
      for (const json of Object.values(subs as Record<string, string>)) {
        const sub = JSON.parse(json) as SubscriptionLike
        this.#index.add(clientId, { ...sub, qos: sub.qos ?? 0 })
      }
    })
  }

  #apply(message: string): void {
    let event: StoreEvent
    try {
      event = JSON.parse(message) as StoreEvent
    } catch {
      return
    }
    if (event.node === this.#options.nodeId) return
    if (event.op === 'add') for (const sub of event.subs) this.#index.add(event.clientId, { ...sub, qos: sub.qos ?? 0 })
    else if (event.op === 'rm') for (const topic of event.topics) this.#index.remove(event.clientId, topic)
    else this.#index.removeClient(event.clientId)
  }

  #announce(redis: Redis, event: StoreChange): void {
    redis.publish(this.#channel, JSON.stringify({ node: this.#options.nodeId, ...event })).catch(() => {
      // the others reload their index when their connection comes back
    })
  }

  // ---------------------------------------------------------------- retained messages

  async storeRetained(packet: PacketLike): Promise<void> {
    const redis = this.#client()
    const topic = String(packet.topic)
    if (payloadBytes(packet) === 0) {
      await checked(redis.multi().hdel(`${this.#prefix}retained`, topic).zrem(`${this.#prefix}retained:topics`, topic).exec())
      return
    }
    await checked(redis.multi().hset(`${this.#prefix}retained`, topic, encodePacket(packet)).zadd(`${this.#prefix}retained:topics`, 0, topic).exec())
  }

  createRetainedStream(pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern])
  }

  createRetainedStreamCombi(patterns: readonly string[]): Readable {
    if (this.#state !== 'open') return closedStream(this.#state)
    return Readable.from(this.#retainedMatching(patterns))
  }

  async *#retainedMatching(patterns: readonly string[]): AsyncGenerator<StoredObject> {
    const redis = this.#client()
    const hash = `${this.#prefix}retained`
    const seen = new Set<string>()
    const pageSize = this.#options.pageSize
    for (const pattern of patterns) {
      if (!hasWildcard(pattern)) {
        const blob = seen.has(pattern) ? null : await redis.hgetBuffer(hash, pattern)
        if (blob) {
          seen.add(pattern)
          yield decodePacket(blob)
        }
        continue
      }
      const { lower, upper } = topicRange(pattern)
      let from = `[${lower}`
      for (;;) {
        const topics = await redis.zrangebylex(`${this.#prefix}retained:topics`, from, upper === undefined ? '+' : `(${upper}`, 'LIMIT', 0, pageSize)
        const wanted = topics.filter((topic) => !seen.has(topic) && topicMatches(pattern, topic))
        const blobs = wanted.length > 0 ? await redis.hmgetBuffer(hash, ...wanted) : []
        const packets: StoredObject[] = []
        wanted.forEach((topic, i) => {
          const blob = blobs[i]
          if (!blob) return
          seen.add(topic)
          packets.push(decodePacket(blob))
        })
        yield* packets
        const last = topics.at(-1)
        if (topics.length < pageSize || last === undefined) break
        from = `(${last}`
      }
    }
  }

  // ---------------------------------------------------------------- subscriptions

  async addSubscriptions(client: ClientRef, subs: readonly SubscriptionLike[]): Promise<void> {
    const redis = this.#client()
    if (subs.length === 0) return
    const fields: string[] = []
    const plain = subs.map((sub) => plainSubscription(sub))
    for (const sub of plain) fields.push(sub.topic, JSON.stringify(sub))
    await checked(redis.multi().hset(`${this.#prefix}subs:${client.id}`, ...fields).sadd(`${this.#prefix}subs:clients`, client.id).exec())
    for (const sub of plain) this.#index.add(client.id, { ...sub, qos: sub.qos ?? 0 })
    this.#announce(redis, { op: 'add', clientId: client.id, subs: plain })
  }

  async removeSubscriptions(client: ClientRef, topics: readonly string[]): Promise<void> {
    const redis = this.#client()
    if (topics.length === 0) return
    await redis.hdel(`${this.#prefix}subs:${client.id}`, ...topics)
    for (const topic of topics) this.#index.remove(client.id, topic)
    this.#announce(redis, { op: 'rm', clientId: client.id, topics: [...topics] })
  }

  async cleanSubscriptions(client: ClientRef): Promise<void> {
    const redis = this.#client()
    await checked(redis.multi().del(`${this.#prefix}subs:${client.id}`).srem(`${this.#prefix}subs:clients`, client.id).exec())
    this.#index.removeClient(client.id)
    this.#announce(redis, { op: 'clean', clientId: client.id })
  }

  async subscriptionsByClient(client: ClientRef): Promise<SubscriptionLike[]> {
    const subs = await this.#client().hgetall(`${this.#prefix}subs:${client.id}`)
    return Object.values(subs).map((json) => JSON.parse(json) as SubscriptionLike)
  }

  subscriptionsWithPrefix(prefix: string): Array<{ clientId: string; topic: string; qos: number }> {
    return this.#index.withPrefix(prefix)
  }

  /** From memory: answers while Redis is away too (the enqueue that follows is what fails). */
  async subscriptionsByTopic(topic: string): Promise<MatchedSubscription[]> {
    this.#client(false)
    return this.#index.match(topic)
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    this.#client(false)
    return { subsCount: this.#index.matchableCount, clientsCount: this.#index.clientCount }
  }

  getClientList(topic: string): Readable {
    if (this.#state !== 'open') return closedStream(this.#state)
    return Readable.from(this.#index.withPrefix(topic).filter((s) => s.topic === topic).map((s) => s.clientId))
  }

  // ---------------------------------------------------------------- outgoing queues

  async outgoingEnqueue(sub: { clientId: string }, packet: PacketLike): Promise<void> {
    return this.#enqueue([sub], packet, true)
  }

  async outgoingEnqueueCombi(subs: ReadonlyArray<{ clientId: string }>, packet: PacketLike): Promise<void> {
    return this.#enqueue(subs, packet, false)
  }

  async #enqueue(subs: ReadonlyArray<{ clientId: string }>, packet: PacketLike, oneSession: boolean): Promise<void> {
    const redis = this.#client()
    if (subs.length === 0) return
    const stored = new AedesPacket(packet)
    const entry = entryId(stored)
    const { maxQueuedMessages, maxQueuedBytes, queuePolicy } = this.#options
    const result = (await redis.mqEnqueue(
      this.#prefix,
      entry,
      encodePacket(stored),
      payloadBytes(stored),
      maxQueuedMessages,
      maxQueuedBytes,
      queuePolicy,
      typeof stored.brokerId === 'string' ? stored.brokerId : '',
      typeof stored.brokerCounter === 'number' ? stored.brokerCounter : '',
      ...subs.map((s) => s.clientId),
    )) as string[]
    const refused: string[] = []
    for (let i = 0; i < result.length; ) {
      if (result[i] === 'd') {
        this.#reportDrop('queue_full', Number(result[i + 2]), String(result[i + 1]))
        i += 3
      } else {
        refused.push(String(result[i + 1]))
        i += 2
      }
    }
    for (const clientId of refused) this.#reportDrop('queue_full', 1, clientId)
    if (oneSession && refused.length > 0 && queuePolicy === 'refuse') {
      throw new QueueFullError(refused[0]!, [maxQueuedMessages > 0 ? `${maxQueuedMessages} messages` : '', maxQueuedBytes > 0 ? `${maxQueuedBytes} bytes` : ''].filter(Boolean).join(', '))
    }
  }

  async outgoingUpdate(client: ClientRef & { clean?: boolean }, packet: PacketLike): Promise<void> {
    // a clean session has no queue in the store (nothing is enqueued for it): skip the round trip
    if (client.clean === true) return
    const redis = this.#client()
    const hasEntry = typeof packet.brokerId === 'string' && typeof packet.brokerCounter === 'number'
    const isPubrel = packet.cmd === 'pubrel'
    await redis.mqUpdate(
      this.#prefix,
      client.id,
      hasEntry ? entryId(packet) : '',
      typeof packet.messageId === 'number' ? packet.messageId : '',
      isPubrel ? encodePacket(packet) : '',
      isPubrel ? payloadBytes(packet) : 0,
    )
  }

  async outgoingClearMessageId(client: ClientRef & { clean?: boolean }, packet: PacketLike | number | undefined): Promise<StoredObject | undefined> {
    if (client.clean === true) return undefined
    const redis = this.#client()
    const p: PacketLike = typeof packet === 'object' && packet !== null ? packet : {}
    const [mode, value] =
      typeof p.messageId === 'number'
        ? ['mid', String(p.messageId)]
        : typeof p.brokerId === 'string' && typeof p.brokerCounter === 'number'
          ? ['entry', entryId(p)]
          : ['first', '']
    const result = (await redis.mqClearBuffer(this.#prefix, client.id, mode, value)) as Buffer[]
    if (result.length < 2) return undefined
    return decodeOutgoing(result[0]!, result[1]!.toString())
  }

  outgoingStream(client: ClientRef): Readable {
    if (this.#state !== 'open') return closedStream(this.#state)
    return Readable.from(this.#outgoingEntries(client.id))
  }

  async *#outgoingEntries(clientId: string): AsyncGenerator<StoredObject> {
    const redis = this.#client()
    // entries queued later reach a connected client directly
    const upTo = (await redis.get(`${this.#prefix}seq`)) ?? '0'
    let after = '0'
    for (;;) {
      const rows = (await redis.mqPageBuffer(this.#prefix, clientId, after, upTo, this.#options.pageSize)) as Buffer[]
      if (rows.length === 0) return
      const now = Date.now()
      const expired: string[] = []
      const packets: StoredObject[] = []
      for (let i = 0; i < rows.length; i += 4) {
        const entry = rows[i]!.toString()
        const messageId = rows[i + 2]!.toString()
        const packet = decodeOutgoing(rows[i + 3]!, messageId)
        after = rows[i + 1]!.toString()
        const expiry = packet.messageExpiry
        if (typeof expiry === 'number') {
          // [MQTT-3.3.2-5] an expired message not yet in flight is deleted, never delivered
          if (expiry <= now && messageId === '') {
            expired.push(entry)
            continue
          }
          // [MQTT-3.3.2-6] the interval sent is the time left
          packet.properties = { ...((packet.properties ?? {}) as object), messageExpiryInterval: Math.max(0, Math.ceil((expiry - now) / 1000)) }
        }
        packets.push(packet)
      }
      if (expired.length > 0) {
        redis.mqDropQueued(this.#prefix, clientId, ...expired).then(
          (n) => Number(n) > 0 && this.#reportDrop('expired', Number(n), clientId),
          (err: unknown) => this.#options.logger?.warn({ err, clientId }, 'could not delete expired queued messages'),
        )
      }
      yield* packets
      if (rows.length < this.#options.pageSize * 4) return
    }
  }

  // ---------------------------------------------------------------- incoming QoS 2

  async incomingStorePacket(client: ClientRef, packet: PacketLike): Promise<void> {
    const stored = new AedesPacket(packet)
    stored.messageId = packet.messageId
    await this.#client().hset(`${this.#prefix}in:${client.id}`, String(packet.messageId), encodePacket(stored))
  }

  async incomingGetPacket(client: ClientRef, packet: PacketLike): Promise<StoredObject> {
    const blob = await this.#client().hgetBuffer(`${this.#prefix}in:${client.id}`, String(packet.messageId))
    if (!blob) throw new NoSuchPacketError()
    return decodePacket(blob)
  }

  async incomingDelPacket(client: ClientRef, packet: PacketLike): Promise<void> {
    const removed = await this.#client().hdel(`${this.#prefix}in:${client.id}`, String(packet.messageId))
    if (removed === 0) throw new NoSuchPacketError()
  }

  async cleanIncoming(client: ClientRef): Promise<void> {
    await this.#client().del(`${this.#prefix}in:${client.id}`)
  }

  // ---------------------------------------------------------------- wills

  async putWill(client: ClientRef, packet: PacketLike): Promise<void> {
    const redis = this.#client()
    const brokerId = (this.#broker as BrokerRef).id
    packet.brokerId = brokerId
    packet.clientId = client.id
    const delay = (packet.properties as { willDelayInterval?: number } | undefined)?.willDelayInterval ?? 0
    await checked(
      redis
        .multi()
        .hset(`${this.#prefix}wills`, client.id, encodePacket(packet))
        .hset(`${this.#prefix}willbroker`, client.id, brokerId)
        .hset(`${this.#prefix}willdelay`, client.id, delay)
        .hdel(`${this.#prefix}willseen`, client.id)
        .exec(),
    )
  }

  async getWill(client: ClientRef): Promise<StoredObject | undefined> {
    const blob = await this.#client().hgetBuffer(`${this.#prefix}wills`, client.id)
    return blob ? decodePacket(blob) : undefined
  }

  /** Deletes the will; with `brokerId`, only the will that broker stored. */
  async delWill(client: ClientRef & { brokerId?: string }): Promise<StoredObject | undefined> {
    const blob = (await this.#client().mqDeleteWillBuffer(this.#prefix, client.id, client.brokerId ?? '')) as Buffer | null
    return blob ? decodePacket(blob) : undefined
  }

  /**
   * Wills stored by brokers not in `brokers` (the live ones), each taken (read and deleted in one
   * script) by this node, once the owner's liveness key has lapsed: the taker publishes it.
   */
  streamWill(brokers: Readonly<Record<string, unknown>> = {}): Readable {
    if (this.#state !== 'open') return closedStream(this.#state)
    return Readable.from(this.#claimWills((broker) => !(Object.hasOwn(brokers, broker) && Boolean(brokers[broker]))))
  }

  /**
   * Wills a previous run of this node left (its clients were cut off when it stopped), read, not
   * taken: this run renews the node's liveness key, so no other node takes them, and they stay
   * stored until published (after their delay) or replaced by a returning client.
   */
  streamOwnWills(brokerId: string): Readable {
    if (this.#state !== 'open') return closedStream(this.#state)
    return Readable.from(this.#ownWills(brokerId))
  }

  async *#ownWills(brokerId: string): AsyncGenerator<StoredObject> {
    const redis = this.#client()
    for (const [clientId, owner] of Object.entries(await redis.hgetall(`${this.#prefix}willbroker`))) {
      if (owner !== brokerId) continue
      const blob = await redis.hgetBuffer(`${this.#prefix}wills`, clientId)
      if (blob) yield decodePacket(blob)
    }
  }

  async *#claimWills(wanted: (brokerId: string) => boolean): AsyncGenerator<StoredObject> {
    const redis = this.#client()
    const owners = await redis.hgetall(`${this.#prefix}willbroker`)
    for (const [clientId, brokerId] of Object.entries(owners)) {
      if (!wanted(brokerId)) continue
      const blob = (await redis.mqClaimWillBuffer(this.#prefix, clientId, brokerId, Date.now())) as Buffer | null
      if (!blob) continue
      this.#options.logger?.info({ clientId, brokerId }, 'took the will of a client whose broker is gone')
      yield decodePacket(blob)
    }
  }

  // ---------------------------------------------------------------- mqlite sessions

  async sessionConnected(clientId: string, info: SessionInfo, atMs: number = Date.now()): Promise<void> {
    const redis = this.#client()
    await checked(
      redis
        .multi()
        .hset(`${this.#prefix}session:${clientId}`, 'protocolVersion', info.protocolVersion, 'expiry', info.expiryIntervalSeconds, 'node', this.#options.nodeId, 'connectedAt', atMs)
        .sadd(`${this.#prefix}sessions`, clientId)
        .zrem(`${this.#prefix}sessions:due`, clientId)
        .exec(),
    )
  }

  async sessionDisconnected(clientId: string, atMs: number = Date.now()): Promise<void> {
    await this.#client().mqSessionDisconnected(this.#prefix, clientId, this.#options.nodeId, atMs, SESSION_NEVER_EXPIRES)
  }

  /** Sessions a dead node held start expiring now; -1 (nothing done) while its liveness key says it is alive. */
  async nodeGone(nodeId: string, atMs: number = Date.now()): Promise<number> {
    return Number(await this.#client().mqNodeGone(this.#prefix, nodeId, atMs, SESSION_NEVER_EXPIRES, '0'))
  }

  /**
   * Renews this node's liveness key for `ttlMs`. Heartbeats on the bus tell the nodes when to look
   * for dead ones; this key, on Redis's clock, is what decides: a node that renews it is only
   * slow, and its clients' wills and sessions are left alone.
   */
  async markAlive(ttlMs: number): Promise<void> {
    await this.#client().set(`${this.#prefix}alive:${this.#options.nodeId}`, '1', 'PX', ttlMs)
  }

  /** Expired sessions, each claimed by this node (no other node sees it again). */
  async expiredSessions(nowMs: number = Date.now()): Promise<string[]> {
    return (await this.#client().mqClaimExpired(this.#prefix, nowMs, 256)) as string[]
  }

  async deleteSession(clientId: string): Promise<void> {
    const redis = this.#client()
    await redis.mqEmptyQueue(this.#prefix, clientId)
    await redis.mqDeleteSession(this.#prefix, clientId)
    this.#index.removeClient(clientId)
    this.#announce(redis, { op: 'clean', clientId })
  }

  /** Cluster-wide figures from Redis (a few O(1) commands per scrape). */
  async stats(): Promise<StoreStats> {
    const redis = this.#client()
    const results = (await redis
      .pipeline()
      .zcard(`${this.#prefix}retained:topics`)
      .hmget(`${this.#prefix}stats`, 'queued', 'inflight')
      .scard(`${this.#prefix}sessions`)
      .info('memory')
      .exec()) ?? []
    const value = (i: number): unknown => {
      const [err, v] = results[i] ?? [new Error('no reply'), undefined]
      if (err) throw err
      return v
    }
    const [queued, inflight] = value(1) as Array<string | null>
    const memory = /used_memory:(\d+)/.exec(String(value(3)))
    return {
      retained: Number(value(0)),
      subscriptions: this.#index.totalCount,
      queued: Number(queued ?? 0),
      inflight: Number(inflight ?? 0),
      dbBytes: Number(memory?.[1] ?? 0),
      sessions: Number(value(2)),
    }
  }

  // ---------------------------------------------------------------- lifecycle

  async flush(): Promise<void> {
    // every write is acknowledged by Redis before its promise resolves
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown()
    return this.#closing
  }

  destroy(): Promise<void> {
    return this.close()
  }

  async #shutdown(): Promise<void> {
    const wasOpen = this.#state === 'open'
    this.#state = 'closing'
    this.#ready = false
    if (wasOpen) {
      await Promise.allSettled([quit(this.#redis), quit(this.#events)])
    }
    this.#state = 'closed'
  }

  #client(requireRedis = true): Scripted {
    if (this.#state !== 'open' || !this.#redis) throw new StoreClosedError(this.#state === 'new' ? 'not set up' : this.#state)
    if (requireRedis && !this.#ready) throw new StoreUnavailableError('Redis')
    return this.#redis
  }

  #reportDrop(reason: DropReason, count: number, clientId: string): void {
    try {
      this.#options.onDrop?.(reason, count, clientId)
    } catch {
      // a metrics callback must not fail a store write
    }
  }
}

/** A queue entry's id: the message's origin broker and its counter there (unique per message). */
function entryId(packet: PacketLike): string {
  if (typeof packet.brokerId === 'string' && typeof packet.brokerCounter === 'number') return `${packet.brokerId}:${packet.brokerCounter}`
  return `local:${randomUUID()}`
}

function decodeOutgoing(blob: Buffer, messageId: string): StoredObject {
  const packet = decodePacket(blob)
  packet.messageId = messageId === '' ? undefined : Number(messageId)
  return packet
}

function plainSubscription(sub: SubscriptionLike): SubscriptionLike {
  const { topic, qos, nl, rap, rh, subscriptionIdentifier } = sub
  return { topic, qos: qos ?? 0, ...(nl !== undefined && { nl }), ...(rap !== undefined && { rap }), ...(rh !== undefined && { rh }), ...(subscriptionIdentifier !== undefined && { subscriptionIdentifier }) }
}

/** A MULTI reply: throw the first command error (Redis runs the rest anyway). */
async function checked(replies: Promise<Array<[Error | null, unknown]> | null>): Promise<void> {
  const results = await replies
  if (results === null) throw new StoreUnavailableError('Redis')
  for (const [err] of results) if (err) throw err
}

function closedStream(state: State): Readable {
  const error = new StoreClosedError(state === 'new' ? 'not set up' : state)
  return Readable.from(
    (async function* closed(): AsyncGenerator<never> {
      throw error
    })(),
  )
}

async function quit(conn: Redis | undefined): Promise<void> {
  if (!conn) return
  try {
    await conn.quit()
  } catch {
    conn.disconnect()
  }
}

async function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError('Redis', message)), ms)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return url
  }
}
