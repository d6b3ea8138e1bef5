import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import { canDeliverDirect, deliverDirect, type DeliveredPacket } from './delivery/delivery-planner.js'
import { outboundWindow } from './delivery/flow-control.js'
import { tapInbound } from './packet-taps.js'
import { clientInternals } from './aedes-internals.js'
import type { ShareDirectory } from '../cluster/share-directory.js'

export const SHARE_PREFIX = '$share/'

/** `$share/{group}/{filter}` split in two; undefined for anything else. */
export function parseShare(topic: string): { group: string; filter: string } | undefined {
  if (!topic.startsWith(SHARE_PREFIX)) return undefined
  const slash = topic.indexOf('/', SHARE_PREFIX.length)
  if (slash <= SHARE_PREFIX.length || slash === topic.length - 1) return undefined
  const group = topic.slice(SHARE_PREFIX.length, slash)
  if (/[+#]/.test(group)) return undefined
  return { group, filter: topic.slice(slash + 1) }
}

/** A persistent member whose client is offline, as the store lists it at start. */
export interface StoredShareMember {
  clientId: string
  topic: string
  qos: number
}

interface Member {
  clientId: string
  qos: number
  /** the connected client, or undefined while a persistent member is away */
  client: Client | undefined
  persistent: boolean
  /** QoS 1/2 copies sent (or held) for a clean member and not acknowledged yet, by packet id */
  unacked: Map<number, AedesPublishPacket>
}

interface Group {
  share: string
  filter: string
  members: Map<string, Member>
  next: number
  listener: (packet: AedesPublishPacket, done: () => void) => void
}

/** A durable store can list the shared subscriptions of sessions that were offline at start. */
export interface SubscriptionListing {
  subscriptionsWithPrefix(prefix: string): StoredShareMember[]
}

export function hasSubscriptionListing(store: object): store is SubscriptionListing {
  return typeof (store as Partial<SubscriptionListing>).subscriptionsWithPrefix === 'function'
}

export interface SharedSubscriptionsStore {
  outgoingEnqueue(sub: { clientId: string }, packet: AedesPublishPacket): Promise<void>
}

/**
 * Shared subscriptions (§4.8.2) for MQTT 5 and 3.1.1 clients. aedes keeps each member's
 * `$share/{group}/{filter}` subscription as a literal filter (so it is persisted and restored
 * with the session like any other); mqlite listens once per group on the real filter and hands
 * each message to exactly one member:
 * - round robin over connected members, skipping those whose outbound window is full (all full:
 *   plain round robin, the copy waits in that member's window);
 * - no member connected: the next persistent member's store queue, so it survives restarts;
 * - each member at min(publish QoS, its granted QoS);
 * - a clean member that disconnects with copies unacknowledged: they go to another member.
 * Copies carry their own broker id and counter so aedes's per-client dedupe keeps them apart from
 * the same message arriving through the member's ordinary subscriptions.
 *
 * In a cluster every node receives every message, so the choice must be the same everywhere:
 * with a ShareDirectory (the members of every group on every node) each node picks the member
 * from the message's origin id and counter, spread over the connected members; only the node
 * holding that member delivers it, and if no member is connected the origin node queues it for a
 * persistent one. Full windows are not skipped there (a node does not know other nodes' windows).
 */
export class SharedSubscriptions {
  readonly #groups = new Map<string, Group>()
  readonly #brokerId: string
  #counter = 0
  #closed = false

  constructor(
    private readonly broker: Aedes,
    private readonly store: SharedSubscriptionsStore,
    private readonly onError: (err: unknown) => void,
    private readonly directory?: ShareDirectory,
  ) {
    this.#brokerId = `${broker.id}:share`
    if (directory) {
      directory.onChange((key) => this.#follow(key))
      for (const key of directory.groups()) this.#follow(key)
    }
    broker.on('clientReady', (client) => this.#memberConnected(client))
    broker.on('subscribe', (subs, client) => {
      for (const sub of subs) if (sub.qos < 0x80) this.#join(client.id, sub.topic, sub.qos, client)
    })
    broker.on('unsubscribe', (topics, client) => {
      for (const topic of topics) this.#leave(client.id, topic)
    })
    broker.on('clientDisconnect', (client) => this.#memberDisconnected(client))
    // acknowledgements of copies sent to clean members, from clients past CONNACK ('clientReady')
    tapInbound(broker, (packet, client) => {
      if ((packet.cmd === 'puback' || packet.cmd === 'pubcomp') && typeof packet.messageId === 'number' && clientInternals(client).connected) {
        for (const group of this.#groups.values()) group.members.get(client.id)?.unacked.delete(packet.messageId)
      }
    })
  }

  /** Number of member subscriptions, connected or not (for metrics). */
  get size(): number {
    let n = 0
    for (const group of this.#groups.values()) n += group.members.size
    return n
  }

  /** Persistent members known from the store at start (their sessions are offline). */
  restore(members: StoredShareMember[]): void {
    for (const m of members) this.#join(m.clientId, m.topic, m.qos, undefined, true)
  }

  /** Every membership of a session ends (clean start, expiry). */
  forgetSession(clientId: string): void {
    for (const [key, group] of this.#groups) {
      if (group.members.delete(clientId) && group.members.size === 0) this.#dropGroup(key, group)
    }
    const directory = this.directory
    if (!directory) return
    for (const key of directory.groups()) {
      const member = directory.members(key).find((m) => m.clientId === clientId)
      if (member) directory.record(key, 'leave', member)
    }
  }

  close(): void {
    this.#closed = true
    for (const [key, group] of this.#groups) this.#dropGroup(key, group)
  }

  #memberConnected(client: Client): void {
    const c = clientInternals(client)
    for (const topic in c.subscriptions) {
      if (topic.startsWith(SHARE_PREFIX)) this.#join(client.id, topic, c.subscriptions[topic]!.qos, client)
    }
  }

  #memberDisconnected(client: Client): void {
    const persistent = !clientInternals(client).clean
    for (const [key, group] of this.#groups) {
      const member = group.members.get(client.id)
      if (!member || member.client !== client) continue
      if (persistent) {
        // its unacknowledged copies stay in its session queue and are resent when it returns
        member.client = undefined
        this.directory?.record(key, 'offline', member)
        continue
      }
      group.members.delete(client.id)
      this.directory?.record(key, 'leave', member)
      const orphans = [...member.unacked.values()]
      if (group.members.size === 0) this.#dropGroup(key, group)
      else for (const packet of orphans) this.#dispatchHere(group, packet, noop)
    }
  }

  #join(clientId: string, topic: string, qos: number, client: Client | undefined, persistent?: boolean): void {
    const share = parseShare(topic)
    if (!share) return
    let group = this.#groups.get(topic.slice(SHARE_PREFIX.length))
    if (!group) group = this.#createGroup(share.group, share.filter)
    const existing = group.members.get(clientId)
    const isPersistent = persistent ?? (client ? !clientInternals(client).clean : false)
    group.members.set(clientId, {
      clientId,
      qos,
      client,
      persistent: isPersistent,
      unacked: existing?.unacked ?? new Map(),
    })
    if (client) this.directory?.record(`${share.group}/${share.filter}`, 'join', { clientId, qos, persistent: isPersistent })
  }

  #leave(clientId: string, topic: string): void {
    const key = topic.startsWith(SHARE_PREFIX) ? topic.slice(SHARE_PREFIX.length) : undefined
    const group = key ? this.#groups.get(key) : undefined
    const member = group?.members.get(clientId)
    if (!group || !member) return
    group.members.delete(clientId)
    this.directory?.record(key!, 'leave', member)
    if (group.members.size === 0) this.#dropGroup(key!, group)
  }

  /** Cluster: listen on a group's filter while it has members anywhere (see #dispatch). */
  #follow(key: string): void {
    const anywhere = (this.directory as ShareDirectory).members(key).length > 0
    const group = this.#groups.get(key)
    if (anywhere && !group) {
      const slash = key.indexOf('/')
      this.#createGroup(key.slice(0, slash), key.slice(slash + 1))
    } else if (!anywhere && group && group.members.size === 0) {
      this.#dropGroup(key, group)
    }
  }

  #createGroup(share: string, filter: string): Group {
    const key = `${share}/${filter}`
    const startsWithWildcard = filter.startsWith('+') || filter.startsWith('#')
    const group: Group = {
      share,
      filter,
      members: new Map(),
      next: 0,
      listener: (packet, done) => {
        // [MQTT-4.7.2-1] a filter starting with a wildcard does not match $-topics
        if (startsWithWildcard && packet.topic.startsWith('$')) return done()
        this.#dispatch(group, packet, done)
      },
    }
    this.#groups.set(key, group)
    this.broker.subscribe(filter, group.listener, noop)
    return group
  }

  #dropGroup(key: string, group: Group): void {
    // cluster: while the group has members anywhere this node keeps listening (it queues what
    // its own publishers send when no member is connected); #follow drops it later
    if (this.directory && !this.#closed && this.directory.members(key).length > 0) return
    this.#groups.delete(key)
    this.broker.unsubscribe(group.filter, group.listener, noop)
  }

  /** Picks one member for the message and hands it over; `done` once it is safe (queued or sent). */
  #dispatch(group: Group, packet: AedesPublishPacket, done: () => void): void {
    if (!this.directory) return this.#dispatchHere(group, packet, done)
    const pool = this.directory.candidates(`${group.share}/${group.filter}`)
    if (pool.length === 0) return done()
    const pick = pool[spread(packet) % pool.length]!
    const nodeId = this.directory.nodeId
    const local = group.members.get(pick.clientId)
    if (pick.node === nodeId && local) return this.#deliver(local, packet, done)
    // nobody connected: the node the message came from queues it, once
    if (pick.node === '' && packet.brokerId === nodeId) {
      return this.#deliver({ clientId: pick.clientId, qos: pick.qos, client: undefined, persistent: true, unacked: new Map() }, packet, done)
    }
    done()
  }

  /** This node's members only (single node, or re-sending a departed member's copies). */
  #dispatchHere(group: Group, packet: AedesPublishPacket, done: () => void): void {
    const member = this.#choose(group)
    if (!member) return done()
    this.#deliver(member, packet, done)
  }

  #deliver(member: Member, packet: AedesPublishPacket, done: () => void): void {
    const copy = { ...packet, qos: Math.min(packet.qos, member.qos) } as DeliveredPacket
    copy.brokerId = this.#brokerId
    copy.brokerCounter = ++this.#counter
    delete copy.messageId
    const client = member.client
    if (!client) {
      // nobody connected: queue it for a persistent member; it is delivered when it returns
      if (copy.qos === 0) return done()
      this.store.outgoingEnqueue({ clientId: member.clientId }, copy).then(done, (err: unknown) => {
        this.onError(err)
        done()
      })
      return
    }
    if (!canDeliverDirect(client)) return done()
    if (copy.qos === 0) return void deliverDirect(client, copy, done)
    const send = (): void => {
      if (!member.persistent) {
        // a packet id now, so an acknowledgement can be matched to this copy
        copy.messageId = nextPacketId(client)
        member.unacked.set(copy.messageId, copy)
      }
      deliverDirect(client, copy, noop)
      done()
    }
    if (!member.persistent) return send()
    this.store.outgoingEnqueue({ clientId: member.clientId }, copy).then(send, (err: unknown) => {
      this.onError(err)
      done()
    })
  }

  #choose(group: Group): Member | undefined {
    const members = [...group.members.values()]
    if (members.length === 0) return undefined
    const connected = members.filter((m) => m.client && !clientInternals(m.client).closed)
    const pool = connected.length > 0 ? connected : members.filter((m) => m.persistent)
    if (pool.length === 0) return undefined
    // skip members whose window is full, unless all are
    for (let i = 0; i < pool.length; i++) {
      const candidate = pool[(group.next + i) % pool.length]!
      if (!candidate.client || !outboundWindow(candidate.client)?.full) {
        group.next = (group.next + i + 1) % pool.length
        return candidate
      }
    }
    const fallback = pool[group.next % pool.length]!
    group.next = (group.next + 1) % pool.length
    return fallback
  }
}

/** Consecutive messages from one origin go to consecutive members, the same on every node. */
function spread(packet: AedesPublishPacket): number {
  let hash = 0
  for (const ch of packet.brokerId ?? '') hash = (hash * 31 + ch.charCodeAt(0)) >>> 0
  return (hash + (packet.brokerCounter ?? 0)) >>> 0
}

/** The same rotation aedes uses for packet ids, so ids never collide on one connection. */
function nextPacketId(client: Client): number {
  const c = clientInternals(client)
  const id = c._nextId
  c._nextId = id >= 65535 ? 1 : id + 1
  return id
}

function noop(): void {}
