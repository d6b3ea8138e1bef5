import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import type { EventEmitter } from 'node:events'
// the module's binding, not the global `performance` (a lazy getter, called on every read)
import { performance } from 'node:perf_hooks'
import { onClientCreated } from '../broker/client-setup.js'
import { tapInbound, type WirePacket } from '../broker/packet-taps.js'
import { connectionInfo } from '../broker/connection-info.js'
import { CONNECT_RESULTS, connectResult, type BrokerStats, type CountingSocket } from './broker-stats.js'
import { createPublishTracker } from './publish-tracker.js'
import { createLatencyBatch } from './latency-batch.js'
import { brokerInternals, clientInternals } from '../broker/aedes-internals.js'

// Where each number comes from, in aedes 2.0.0-beta.1 (see docs/metrics.md for the meanings):
// - received: the connection's MQTT parser, before aedes looks at the packet; the latency
//   clock starts at the socket read that brought it;
// - sent: `authorizeForward`, the last synchronous step before aedes writes a PUBLISH (after
//   the delivery planner chose the QoS and the outbound window let it go);
// - latency: from that socket read to the check phase of the turn in which `authorizeForward`
//   let the copy go, when aedes writes the turn's packets (see latency-batch.ts);
// - no_subscribers: aedes's `published` hook, after a publish succeeded: from the topic's live
//   listeners (broker.subscribe) in mqemitter and, when there are none, from the store's
//   subscriptions (the sessions aedes queues QoS 1/2 copies for);
// - expired, not_authorized on the queue drain: `authorizeForward` again (aedes decides those
//   right after it, from the same fields);
// - too_large (inbound): the clientError/connectionError aedes emits when it refuses the frame;
// - connections, bytes, attempts: the transport socket and the CONNACK event, once per connection.

type Deliver = (packet: TrackedPacket, callback: () => void) => void

/** An incoming PUBLISH as the parser emits it, with the stamps this module adds. */
interface IncomingPublish {
  cmd: string
  qos?: number
  retain?: boolean
  topic: string
  /** performance.now() of the socket read that brought it */
  mqliteReceivedAt?: number
}

type TrackedPacket = AedesPublishPacket & { writeCallback?: unknown; messageExpiry?: number }

interface BrokerInternals {
  persistence: {
    subscriptionsByTopic(topic: string): Promise<Array<{ topic: string }>>
    /** the SQLite store's answer without a promise */
    subscriptionsByTopicNow?(topic: string): Array<{ topic: string }>
  }
  /** called by the patched aedes publish() with the incoming packet and the one it built */
  publishCounted?: (incoming: IncomingPublish, packet: TrackedPacket) => void
  published(packet: IncomingPublish, client: unknown, done: unknown): void
  subscribe(topic: string, deliver: Deliver, done: unknown): void
}

const startsWithWildcard = (filter: string): boolean => filter.charCodeAt(0) === 43 /* + */ || filter.charCodeAt(0) === 35 /* # */
const noop = (): void => {}

/**
 * Feeds `stats` from a running aedes broker. Everything per message is a few typed-array writes,
 * a couple of property writes and a cached live-subscriber lookup per publish; the clock is read
 * once per socket read that brings PUBLISH packets and once per event-loop turn that delivers
 * some; the rest happens once per connection.
 * Call it once, right after the broker is created and before any listener accepts.
 */
export function instrumentBroker(broker: Aedes, stats: BrokerStats): void {
  const internals = broker as unknown as BrokerInternals
  const tracker = createPublishTracker()
  const brokerId = broker.id
  const { received, sent, latency } = stats
  const failed = CONNECT_RESULTS.indexOf('failed')

  // PUBLISH in: counted and time-stamped as the parser emits it, before aedes handles it. One
  // clock read per socket read, not per PUBLISH: the packets parsed from one read arrived
  // together, and a clock read costs as much as the rest of this hook. The reading is forgotten
  // once the callback that took it has finished (its microtasks run right after it).
  let readAt = -1
  const forgetReadAt = (): void => {
    readAt = -1
  }
  const countIncoming = (packet: IncomingPublish): void => {
    if (packet.cmd !== 'publish') return
    received[packet.qos ?? 0]!++
    if (readAt < 0) {
      readAt = performance.now()
      queueMicrotask(forgetReadAt)
    }
    packet.mqliteReceivedAt = readAt
  }

  tapInbound(broker, countIncoming as unknown as (packet: WirePacket) => void)
  // Connections and bytes: the transport socket (the HTTP upgrade socket for WebSockets) keeps
  // its own byte counts, read when scraped; only its end is recorded here, by one listener
  // function shared by every connection.
  const counted = new WeakMap<object, { listener: ReturnType<BrokerStats['listener']>; c: ReturnType<typeof clientInternals> }>()
  function socketClosed(this: CountingSocket & EventEmitter): void {
    const entry = counted.get(this)
    if (!entry) return
    counted.delete(this)
    const { listener, c } = entry
    listener.open--
    listener.sockets.delete(this)
    listener.closedBytesIn += this.bytesRead ?? 0
    listener.closedBytesOut += this.bytesWritten ?? 0
    // No CONNACK went out: timed out, broken, or not MQTT at all.
    if (c.connackSent !== true) listener.attempts[failed]!++
  }
  onClientCreated(broker, (client) => {
    const listener = stats.listener(connectionInfo(client)?.listener ?? 'unknown')
    const socket = (client.req?.socket ?? client.conn) as unknown as CountingSocket & EventEmitter
    listener.open++
    listener.sockets.add(socket)
    counted.set(socket, { listener, c: clientInternals(client) })
    socket.on('close', socketClosed)
  })

  // A live subscription matched: mqemitter's matcher (whose answers are cached per topic) has a
  // listener for the topic. Every live subscription reaches it through broker.subscribe: each
  // client's (aedes) and each shared-subscription group's (mqlite); those whose filter starts
  // with a wildcard are noted there, as they never take a $-topic [MQTT-4.7.2-1].
  const wildcardListeners = new WeakSet<Deliver>()
  const subscribe = internals.subscribe
  internals.subscribe = function (this: BrokerInternals, topic, deliver, done) {
    if (startsWithWildcard(topic)) wildcardListeners.add(deliver)
    subscribe.call(this, topic, deliver, done)
  }
  const matcher = brokerInternals(broker).mq._matcher
  const liveSubscriber = (topic: string): boolean => {
    const listeners = matcher.match(topic) as Deliver[]
    if (topic.charCodeAt(0) !== 36 /* $ */) return listeners.length > 0
    for (const listener of listeners) if (!wildcardListeners.has(listener)) return true
    return false
  }

  broker.on('connackSent', (packet, client) => {
    const code = (packet as { returnCode?: number; reasonCode?: number }).returnCode ?? packet.reasonCode ?? 0
    const listener = stats.listener(connectionInfo(client)?.listener ?? 'unknown')
    listener.attempts[CONNECT_RESULTS.indexOf(connectResult(code))]!++
  })

  // Each client PUBLISH as aedes builds its packet (a hook of the aedes patch, not a wrapper
  // around publish(): a wrapper took V8's inlining budget of the whole publish path, and what was
  // no longer inlined allocated per message): its broker counter, which every copy carries, is
  // recorded with its arrival time. The broker's own publishes ($SYS, wills) have no arrival time.
  internals.publishCounted = (incoming, packet) => {
    const receivedAt = incoming.mqliteReceivedAt
    if (receivedAt !== undefined) tracker.record(packet.brokerCounter, receivedAt)
  }

  // No subscriber: decided once aedes has published the message (it calls `published` only then,
  // after the offline queues took their copies), from the live listeners, whose answer the
  // matcher caches. Only a message no live subscription took is looked up in the store: aedes
  // queues QoS 1/2 messages for the sessions there, never QoS 0 ones. A retained message is kept
  // for future subscribers, so it is not a drop.
  // A store that matches in memory (SQLite) answers at once: a fleet publishing QoS 1 to a topic
  // nobody reads yet would otherwise cost a promise per message here. A closed store is reported
  // by aedes, not counted.
  const store = internals.persistence
  const matchNow = store.subscriptionsByTopicNow?.bind(store)
  const queuedFor = (topic: string, subs: ReadonlyArray<{ topic: string }>): boolean => {
    const dollar = topic.charCodeAt(0) === 36 /* $ */
    return subs.some((sub) => !dollar || !startsWithWildcard(sub.topic))
  }
  const countIfNotQueued = (topic: string): void => {
    if (matchNow === undefined) {
      store.subscriptionsByTopic(topic).then((subs) => {
        if (!queuedFor(topic, subs)) stats.drop('no_subscribers')
      }, noop)
      return
    }
    let subs: ReadonlyArray<{ topic: string }>
    try {
      subs = matchNow(topic)
    } catch {
      return
    }
    if (!queuedFor(topic, subs)) stats.drop('no_subscribers')
  }
  const published = internals.published
  internals.published = function (this: BrokerInternals, packet, client, done) {
    published.call(this, packet, client, done)
    if (packet.mqliteReceivedAt === undefined || packet.retain === true || liveSubscriber(packet.topic)) return
    if ((packet.qos ?? 0) === 0) stats.drop('no_subscribers')
    else countIfNotQueued(packet.topic)
  }

  // PUBLISH out. Live deliveries reach here once per subscriber with the QoS they will be sent
  // at; the reconnect queue drain reaches here with aedes's QoSPacket (the only caller that has
  // `writeCallback` set already), which aedes then drops if it expired or the session restarted.
  const authorizeForward = broker.authorizeForward
  const latencies = createLatencyBatch(latency, () => performance.now())
  const countDrained = (client: Client, p: TrackedPacket, out: TrackedPacket | null | undefined): TrackedPacket | null | undefined => {
    const c = clientInternals(client)
    if (c.clean || c._cleanStart === true) return out // the old session's queue is discarded
    if (!out) stats.drop('not_authorized')
    else if (p.messageExpiry !== undefined && p.messageExpiry <= Date.now()) stats.drop('expired')
    else sent[out.qos]!++
    return out
  }
  // Kept small: it runs once per delivery inside aedes's delivery path, which V8 inlines into one
  // optimized function under a budget; the uncommon cases are calls of their own.
  broker.authorizeForward = (client, packet) => {
    const out = authorizeForward.call(broker, client, packet) as TrackedPacket | null | undefined
    const p = packet as TrackedPacket
    if (p.writeCallback !== undefined) return countDrained(client, p, out)
    if (!out) {
      stats.drop('not_authorized')
      return out
    }
    sent[out.qos]!++
    if (p.brokerId !== brokerId) return out
    const receivedAt = tracker.receivedAt(p.brokerCounter)
    if (receivedAt >= 0) latencies.add(receivedAt)
    return out
  }

  // Inbound frames over the broker's maximum packet size (aedes refuses them with this error).
  const countTooLarge = (_client: Client, err: Error): void => {
    if (err.message === 'packet too large') stats.drop('too_large')
  }
  broker.on('clientError', countTooLarge)
  broker.on('connectionError', countTooLarge)

  // Offline persistent sessions, as this process saw them: exact for the memory store (whose
  // sessions live exactly as long as the process); a store that reports its own session count
  // is preferred by the registry.
  broker.on('client', (client) => stats.offlineSessions.delete(client.id))
  broker.on('clientDisconnect', (client) => {
    if (!client.clean) stats.offlineSessions.add(client.id)
  })
  broker.on('sessionExpired', (client) => stats.offlineSessions.delete(client.id))
}
