import type { Aedes, Client, ConnectPacket, PublishPacket } from 'aedes'
import { AuthenticationError } from '../auth/errors.js'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import { createClientLimits, type ClientLimits } from './client-limits.js'
import { isMalformedString } from './hostile-input.js'
import type { LimitName, LimitStats } from './limit-stats.js'
import { PublishRefusedError } from '../errors.js'
import { clientInternals, writeDirect } from '../broker/aedes-internals.js'

/** MQTT 5 DISCONNECT reason codes used here (§3.14.2.1). */
const MALFORMED_PACKET = 0x81
const TOPIC_NAME_INVALID = 0x90
const MESSAGE_RATE_TOO_HIGH = 0x96

type PublishCallback = (err?: Error | null) => void

export interface BrokerGuardsOptions {
  limits: Config['limits']
  stats: LimitStats
  logger: Logger
  /** A QoS 1 PUBLISH is finished without going through `published` (inbound Receive Maximum). */
  onQoS1Done: (client: Client) => void
}

/**
 * The connect, publish and subscribe checks of the security limits and hostile-input defences,
 * called from the aedes hooks in create-aedes.ts. Each refusal is counted and logged.
 *
 * Refusing a PUBLISH without closing the connection: aedes answers an `authorizePublish` error
 * with 0x87 for MQTT 5 but closes a 3.1.1 connection, which 3.1.1 does not ask for. For those
 * clients `ackAndDrop` sets the flag aedes's MQTT 5 path uses (`_notAuthorized`: its publish step
 * then neither routes, retains, queues nor acknowledges the packet), writes the plain PUBACK or
 * PUBREC itself and lets the hook succeed. A later PUBREL is answered with PUBCOMP by aedes as
 * for any unknown packet id, so the QoS 2 flow completes.
 */
export interface BrokerGuards {
  readonly clients: ClientLimits
  /** Follows every client's SUBSCRIBEs (the subscription quota); once, in the order of inbound taps. */
  install(broker: Aedes): void
  /** preConnect: a CONNECT with malformed strings is refused (the connection is closed). */
  checkConnect(client: Client, packet: ConnectPacket): Error | undefined
  /** authenticate: a client id over the limit is refused with return code 2 (v5: 0x85). */
  checkClientId(client: Client): AuthenticationError | undefined
  /** authorizePublish, first: true when the guards answered (the caller must stop). */
  interceptPublish(client: Client, packet: PublishPacket, callback: PublishCallback): boolean
  /** authorizeSubscribe, first: 'closed' (answered with an error), 'refused', or undefined to go on. */
  checkSubscribe(client: Client, filter: string): Error | 'refused' | undefined
  /** Accepts a PUBLISH on the wire and drops it (3.1.1: no negative acknowledgement exists). */
  ackAndDrop(client: Client, packet: PublishPacket, callback: PublishCallback): void
  /** Once the broker exists: follows SUBACKs and counts the limits aedes enforces itself. */
  attach(broker: Aedes): void
}

export function createBrokerGuards({ limits, stats, logger, onQoS1Done }: BrokerGuardsOptions): BrokerGuards {
  const clients = createClientLimits(limits, stats)

  function ackAndDrop(client: Client, packet: PublishPacket, callback: PublishCallback): void {
    ;(packet as PublishPacket & { _notAuthorized?: boolean })._notAuthorized = true
    if (packet.qos > 0 && packet.messageId !== undefined) writeDirect(client, { cmd: packet.qos === 1 ? 'puback' : 'pubrec', messageId: packet.messageId })
    if (packet.qos === 1) onQoS1Done(client)
    callback(null)
  }

  const hit = (limit: LimitName, client: Client, topic?: string): void => {
    stats.record({ limit, clientId: client.id, topic })
  }
  const warn = (client: Client, message: string, extra: Record<string, unknown> = {}): void => {
    logger.warn({ clientId: client.id, ...extra }, message)
  }

  /** Ends the connection for a PUBLISH that breaks the rules: v5 hears why, 3.1.1 is closed by aedes. */
  function closeFor(client: Client, reasonCode: number, err: Error, callback: PublishCallback): void {
    if (client.version === 5) {
      // aedes then answers the (closed) client's PUBLISH with 0x87, which is never written.
      client.disconnect({ reasonCode }, () => callback(err))
    } else {
      callback(err)
    }
  }

  return {
    clients,
    install: (broker) => clients.install(broker),

    checkConnect(client, packet) {
      const strings = [packet.clientId, packet.username, packet.will?.topic]
      if (strings.some(isMalformedString)) {
        hit('malformed_input', client)
        return new Error('malformed UTF-8 string in CONNECT')
      }
      if (packet.will && clients.topicTooLong(packet.will.topic)) {
        hit('topic_length', client, packet.will.topic)
        return new Error('will topic longer than limits.maxTopicLength')
      }
      return undefined
    },

    checkClientId(client) {
      // a server-assigned id (empty client id, MQTT 5) is the broker's own and not limited
      const assigned = clientInternals(client)._assignedClientId !== undefined
      if (assigned || !clients.clientIdTooLong(client.id)) return undefined
      hit('client_id_length', client)
      warn(client, 'client id longer than limits.maxClientIdLength: refused', { length: client.id.length })
      return new AuthenticationError(2, 'identifier rejected: client id too long')
    },

    interceptPublish(client, packet, callback) {
      if (isMalformedString(packet.topic)) {
        hit('malformed_input', client)
        warn(client, 'malformed UTF-8 in PUBLISH topic: disconnecting')
        closeFor(client, MALFORMED_PACKET, new Error('malformed UTF-8 string in PUBLISH topic'), callback)
        return true
      }
      if (clients.topicTooLong(packet.topic)) {
        hit('topic_length', client)
        warn(client, 'PUBLISH topic longer than limits.maxTopicLength: disconnecting', { length: packet.topic.length })
        closeFor(client, TOPIC_NAME_INVALID, new Error('topic name longer than limits.maxTopicLength'), callback)
        return true
      }
      // a will is published after the connection ended: no rate applies
      if (client.closed || clients.takePublishToken(client)) return false
      if (limits.publishRate.policy === 'disconnect') {
        warn(client, 'publish rate exceeded: disconnecting')
        closeFor(client, MESSAGE_RATE_TOO_HIGH, new Error('publish rate exceeded'), callback)
        return true
      }
      if (client.version === 5) {
        if (packet.qos > 0) clients.answerQuotaExceeded(client, packet.messageId)
        if (packet.qos === 1) onQoS1Done(client)
        callback(new PublishRefusedError('publish rate exceeded: message dropped'))
      } else {
        ackAndDrop(client, packet, callback)
      }
      return true
    },

    checkSubscribe(client, filter) {
      if (isMalformedString(filter)) {
        hit('malformed_input', client)
        return new Error('malformed UTF-8 string in SUBSCRIBE topic filter')
      }
      if (clients.topicTooLong(filter)) {
        hit('topic_length', client)
        return 'refused'
      }
      if (clients.overSubscriptionQuota(client, filter)) {
        hit('subscriptions', client, filter)
        return 'refused'
      }
      return undefined
    },

    ackAndDrop,

    attach(target) {
      clients.attach(target)
      // limits aedes enforces itself: count them too
      const count = (client: Client, err: Error): void => {
        if (/connect did not arrive in time/.test(err.message)) hit('connect_timeout', client)
        else if (/packet too large/.test(err.message)) hit('packet_too_large', client)
        else if (/too many levels/.test(err.message)) hit('topic_levels', client)
      }
      target.on('connectionError', count)
      target.on('clientError', count)
    },
  }
}

