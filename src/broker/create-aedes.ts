import { Aedes, type AedesOptions, type Client, type PublishPacket, type Subscription } from 'aedes'
import type { Readable } from 'node:stream'
import type { Authorizer } from '../auth/authorizer.js'
import type { DeniedAction } from '../auth/auth-stats.js'
import { AuthenticationError } from '../auth/errors.js'
import { createBrokerGuards } from '../limits/broker-guards.js'
import { LimitStats } from '../limits/limit-stats.js'
import { limitRetained, type RetainedLimit } from '../limits/retained-limit.js'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import { onClientCreated } from './client-setup.js'
import { slimClientListeners } from './lean-client.js'
import { explainDisconnects } from './disconnect-reasons.js'
import { installOutboundTopicAliases } from './delivery/topic-alias-out.js'
import { planDeliveries, type DropReason } from './delivery/delivery-planner.js'
import { installOutboundWindows, pacedOutgoingStream } from './delivery/flow-control.js'
import { inboundQoS1Done, installInboundQuota } from './delivery/inbound-quota.js'
import { planOfflineQueue, type QueueingStore } from './delivery/offline-queue.js'
import { hardenStore, usePrototypeFreeMaps, type HardenedStore } from './hardening.js'
import { SharedSubscriptions, type SharedSubscriptionsStore } from './shared-subscriptions.js'
import { dropWillDelayInterval } from './will-delay.js'
import type { ShareDirectory } from '../cluster/share-directory.js'
import { installEnhancedAuth, takeEnhancedOutcome } from './enhanced-auth.js'
import { PublishRefusedError } from '../errors.js'
import { brokerInternals, clientInternals, retainedCopyBrokerId, writeDirect } from './aedes-internals.js'
import { cacheTopicMatches } from '../mqtt/match-cache.js'
import { createPublishEncoder } from '../mqtt/publish-encoder.js'
import { encodeAck, useUncachedNumbers } from '../mqtt/ack-encoder.js'

/** Where the broker reports a message it did not deliver to one subscriber. */
export type DropListener = (reason: DropReason | 'queue_full') => void

/** The store methods the broker itself calls or wraps, beyond what aedes calls. */
export type BrokerStore = HardenedStore &
  QueueingStore &
  SharedSubscriptionsStore & {
    outgoingStream(client: Client): Readable
    subscriptionsByTopic(topic: string): Promise<unknown[]>
  }

export interface CreateAedesOptions {
  config: Config
  store: BrokerStore
  authorizer: Authorizer
  logger: Logger
  onDrop?: DropListener
  /** Counts the security limits hit (see src/limits). */
  limitStats?: LimitStats
  /** A publish or subscribe the authorizer refused. */
  onDenied?: (action: DeniedAction, client: Client, topic: string) => void
  /** Cluster mode: the shared bus, node id and heartbeat period aedes runs with. */
  cluster?: { mq: object; heartbeatInterval: number; id: string }
  /**
   * Whether the store can take writes now (cluster mode: Redis reachable). While it cannot, new
   * connections are refused with "server unavailable" and QoS 1/2 publishes are refused, never
   * acknowledged.
   */
  storeAvailable?: () => boolean
  /** Cluster mode: shared subscription groups across every node. */
  shareDirectory?: ShareDirectory
}

/** MQTT 5 reason code 0x80 */
const UNSPECIFIED_ERROR = 0x80

/** Default Receive Maximum of MQTT 5 when the broker advertises none. */
const RECEIVE_MAXIMUM_DEFAULT = 65535

/**
 * Builds the aedes broker from the validated config: options, authorization hooks, the delivery
 * path (overlapping subscriptions, flow control, packet size) and the hardening the pre-release
 * needs. Starting it also runs the store's `setup()`.
 */
export interface BrokerCore {
  aedes: Aedes
  shared: SharedSubscriptions
  /** retained messages and bytes counted against limits.maxRetained* */
  retained: RetainedLimit
}

export async function createAedes({
  config,
  store,
  authorizer,
  logger,
  onDrop = noop,
  limitStats = new LimitStats(),
  onDenied = noop,
  cluster,
  storeAvailable = () => true,
  shareDirectory,
}: CreateAedesOptions): Promise<BrokerCore> {
  useUncachedNumbers()
  const reportError = (err: unknown): void => logger.error({ err }, 'store error')
  const guards = createBrokerGuards({ limits: config.limits, stats: limitStats, logger, onQoS1Done: inboundQoS1Done })
  // a subscription refused for any reason (ACL, quota) must never be persisted
  hardenStore(
    store,
    (client, filter) => !guards.clients.overSubscriptionQuota(client, filter) && authorizer.canSubscribe(client, filter),
    reportError,
  )
  planOfflineQueue(store)
  const outgoingStream = store.outgoingStream.bind(store)
  const canReadQueued = authorizer.canReceive?.bind(authorizer)
  store.outgoingStream = (client) => pacedOutgoingStream(client, outgoingStream(client), canReadQueued)

  const { mqtt } = config
  const options: AedesOptions = {
    ...(config.brokerId ? { id: config.brokerId } : {}),
    ...cluster,
    persistence: store,
    connectTimeout: mqtt.connectTimeout,
    maxClientsIdLength: mqtt.maxClientIdLength,
    maxTopicLevels: mqtt.maxTopicLevels,
    topicAliasMaximum: mqtt.topicAliasMaximum,
    maximumPacketSize: mqtt.maxPacketSize,
    receiveMaximum: mqtt.receiveMaximum,
    sessionExpiryIntervalLimit: mqtt.maxSessionExpiryInterval,
    // Not aedes's keepaliveLimit: it refuses 3.1.1 clients with a return code 3.1.1 does not define.
    keepaliveLimit: 0,
    preConnect: (client, packet, callback) => {
      const malformed = guards.checkConnect(client, packet)
      if (malformed) return callback(malformed, false)
      applyServerKeepAlive(client, packet.protocolVersion ?? 4, packet.keepalive ?? 0, mqtt.maxKeepAlive)
      if (packet.protocolVersion === 5) installOutboundTopicAliases(client, packet.properties?.topicAliasMaximum ?? 0)
      if (packet.protocolVersion !== 5 || mqtt.topicAliasMaximum <= 0) dropInboundTopicAliases(client)
      callback(null, true)
    },
    authenticate: (client, username, password, callback) => {
      const badClientId = guards.checkClientId(client)
      if (badClientId) return callback(badClientId, false)
      if (!storeAvailable()) return callback(new AuthenticationError(3, 'the store is unreachable; try again later'), false)
      // after an enhanced authentication exchange, its outcome stands in for the user name and password
      const enhanced = takeEnhancedOutcome(client)
      const verdict = enhanced && authorizer.enhanced ? authorizer.enhanced.conclude(client, enhanced) : authorizer.authenticate(client, username, password)
      Promise.resolve(verdict).then(
        (ok) => callback(null, ok),
        (err: unknown) => {
          // a refusal with its own CONNACK code; aedes reads err.returnCode
          if (err instanceof AuthenticationError) return callback(err, false)
          logger.error({ err, clientId: client.id }, 'authentication failed with an error')
          callback(null, false)
        },
      )
    },
    authorizePublish: (client, packet, callback) => {
      dropWillDelayInterval(packet)
      if (!client) restampForeignWill(broker, packet)
      if (client && guards.interceptPublish(client, packet, callback)) return
      if (client && packet.qos > 0 && !storeAvailable()) return refuseUnstored(client, packet, callback)
      if (authorizer.canPublish(client, packet.topic)) return callback(null)
      if (client) onDenied('publish', client, packet.topic)
      onDrop('not_authorized')
      // 3.1.1 has no negative PUBACK: acknowledge and drop rather than let aedes close the connection
      if (client && client.version !== 5) return guards.ackAndDrop(client, packet, callback)
      if (packet.qos === 1) inboundQoS1Done(client) // answered at once with a reason code
      callback(new PublishRefusedError('not authorized to publish'))
    },
    authorizeSubscribe: (client, sub, callback) => {
      const guard = guards.checkSubscribe(client, sub.topic)
      if (guard instanceof Error) return callback(guard, null as unknown as Subscription)
      if (guard === 'refused') return callback(null, null as unknown as Subscription)
      if (authorizer.canSubscribe(client, sub.topic)) return callback(null, sub)
      onDenied('subscribe', client, sub.topic)
      callback(null, null as unknown as Subscription)
    },
    // Live deliveries are checked by the delivery planner; this covers the queue drain at reconnect.
    ...(authorizer.canReceive ? { authorizeForward: forwardIfReadable(authorizer.canReceive) } : {}),
    published: (packet, client, callback) => {
      if (packet.qos === 1) inboundQoS1Done(client)
      if (client?.version !== 5 || packet.qos === 0) return callback(null)
      markNoMatchingSubscribers(broker, store, packet).then(
        () => callback(null),
        () => callback(null),
      )
    },
  }
  // `published` above runs only once the broker exists
  let broker: Aedes = undefined as unknown as Aedes
  broker = await Aedes.createBroker(options)
  // first of the client setups (see lean-client.ts)
  slimClientListeners(broker)
  usePrototypeFreeMaps(broker)
  cacheTopicMatches(brokerInternals(broker).mq._matcher)
  // read by the patched write.js: plain PUBLISH packets and acknowledgements as one buffer each
  const encodePublishes = createPublishEncoder()
  brokerInternals(broker).encodeOutgoing = (packet, version) => (packet.cmd === 'publish' ? encodePublishes(packet, version) : encodeAck(packet, version))
  brokerInternals(broker).retainedCopyBrokerId = retainedCopyBrokerId(broker)
  guards.attach(broker)
  const retained = await limitRetained(store as unknown as Parameters<typeof limitRetained>[0], config.limits, limitStats)
  // read by the patched SUBSCRIBE and CONNACK handlers
  ;(broker as Aedes & { sharedSubscriptions: boolean }).sharedSubscriptions = mqtt.sharedSubscriptions
  const shared = new SharedSubscriptions(broker, store, reportError, shareDirectory)
  const cleanSubscriptions = store.cleanSubscriptions.bind(store)
  store.cleanSubscriptions = async (client) => {
    await cleanSubscriptions(client)
    shared.forgetSession(client.id)
  }
  const receiveMaximum = mqtt.receiveMaximum > 0 ? mqtt.receiveMaximum : RECEIVE_MAXIMUM_DEFAULT
  const canReceive = authorizer.canReceive?.bind(authorizer)
  // Inbound taps run in this order, for every client. Per connection these cost as little as
  // possible: state is created when a client first uses a feature (see each module).
  // First: while an exchange is pending no other tap may see the client's packets.
  installEnhancedAuth(broker, {
    provider: authorizer.enhanced,
    timeout: mqtt.connectTimeout,
    report: (client, err) => broker.emit('clientError', client, err),
  })
  guards.install(broker)
  installInboundQuota(broker, receiveMaximum)
  installOutboundWindows(broker, {
    maxInflight: mqtt.maxInflightMessages,
    maxPending: config.store.maxQueuedMessages,
    onOverflow: () => onDrop('queue_full'),
  })
  planDeliveries(broker, { onDrop, ...(canReceive ? { canReceive } : {}) })
  onClientCreated(broker, explainDisconnects)
  return { aedes: broker, shared, retained }
}

/**
 * aedes reads a client's inbound topic aliases only for MQTT 5 with topicAliasMaximum > 0
 * (lib/handlers/publish.js). Shared by the other clients, so it never stores anything.
 */
class NoTopicAliases extends Map<number, string> {
  override set(): this {
    return this
  }
}
const NO_TOPIC_ALIASES = new NoTopicAliases()

/**
 * aedes gives every connection a Map of inbound topic aliases. A client that can never use one
 * (not MQTT 5, or aliases not offered) shares one empty map instead.
 */
function dropInboundTopicAliases(client: Client): void {
  const c = clientInternals(client)
  if (c._topicAliases.size === 0) c._topicAliases = NO_TOPIC_ALIASES
}

/**
 * [MQTT-3.2.2-21] Server Keep Alive: a v5 client asking for no keep-alive or more than the limit
 * is told the limit in CONNACK and held to it. 3.1.1 has no way to say so; those clients keep
 * their own value rather than being refused.
 */
function applyServerKeepAlive(client: Client, version: number, keepalive: number, limit: number): void {
  if (limit > 0 && version === 5 && (keepalive === 0 || keepalive > limit)) {
    clientInternals(client)._serverKeepAlive = limit
  }
}

/**
 * A QoS 1/2 publish the store cannot take now is refused, never acknowledged: an MQTT 5 publisher
 * gets PUBACK/PUBREC 0x80 with a reason string; 3.1.1 has no negative acknowledgement, so the
 * connection closes and the client sends the message again when it reconnects [MQTT-4.4.0-1].
 */
function refuseUnstored(client: Client, packet: PublishPacket, callback: (err: Error | null) => void): void {
  if (client.version !== 5) return callback(new PublishRefusedError('the store is unreachable'))
  ;(packet as PublishPacket & { _notAuthorized?: boolean })._notAuthorized = true
  if (packet.messageId !== undefined) {
    writeDirect(client, {
      cmd: packet.qos === 1 ? 'puback' : 'pubrec',
      messageId: packet.messageId,
      reasonCode: UNSPECIFIED_ERROR,
      properties: { reasonString: 'the store is unreachable; try again later' },
    })
  }
  if (packet.qos === 1) inboundQoS1Done(client)
  callback(null)
}

/**
 * aedes publishes the will of a client of another (dead) broker with that broker's id and the
 * counter the will got there. Subscribers drop a message whose counter is not above the last one
 * they had from that id, so wills published by different survivors (each counting on its own)
 * could be taken for duplicates. This broker publishes it, so it stamps it as its own message.
 */
function restampForeignWill(broker: Aedes, packet: PublishPacket): void {
  const will = packet as PublishPacket & { brokerId?: string; brokerCounter?: number; clientId?: string }
  if (typeof will.clientId !== 'string' || will.brokerId === undefined || will.brokerId === broker.id) return
  will.brokerId = broker.id
  will.brokerCounter = ++(broker as Aedes & { counter: number }).counter
}

/** Re-checks read access on every queued delivery, so a revoked grant takes effect. */
function forwardIfReadable(canReceive: NonNullable<Authorizer['canReceive']>): AedesOptions['authorizeForward'] {
  return (client, packet) => (canReceive(client, packet.topic) ? packet : null)
}

/**
 * [MQTT-3.4.2-...] PUBACK/PUBREC reason 0x10 for an MQTT 5 publisher: no live subscription (the
 * router's listeners, shared groups included) and no offline session matched. The patched
 * publish handler reads the mark when it writes the acknowledgement.
 */
async function markNoMatchingSubscribers(broker: Aedes, store: { subscriptionsByTopic(topic: string): Promise<unknown[]> }, packet: { topic: string }): Promise<void> {
  if (brokerInternals(broker).mq._matcher.match(packet.topic).length > 0) return
  if ((await store.subscriptionsByTopic(packet.topic)).length > 0) return
  ;(packet as { noMatchingSubscribers?: boolean }).noMatchingSubscribers = true
}

function noop(): void {}
