import type { Aedes, Client } from 'aedes'
import { tapInbound, transformOutbound, type WirePacket } from '../broker/packet-taps.js'
import type { Config } from '../config/schema.js'
import type { LimitStats } from './limit-stats.js'
import { TokenBucket, burstFor } from './token-bucket.js'
import { utf8Length } from './hostile-input.js'
import { clientInternals } from '../broker/aedes-internals.js'

/** MQTT 5 reason code 0x97: Quota exceeded (SUBACK, PUBACK, PUBREC). */
export const QUOTA_EXCEEDED = 0x97

interface ParsedPacket {
  cmd: string
  messageId?: number
  subscriptions?: Array<{ topic: string }>
  unsubscriptions?: string[]
}

interface AckPacket {
  cmd: string
  messageId?: number
  reasonCode?: number
  granted?: number[]
}

/** Created at a client's first use of a limit: an idle connection costs nothing here. */
interface ClientState {
  /** filters the session holds or has asked for; built from the session on its first SUBSCRIBE */
  filters: Set<string> | undefined
  /** filters of SUBSCRIBEs in progress that are over the quota */
  overQuota: Set<string> | undefined
  /** v5: SUBSCRIBE packets in progress with over-quota entries, by packet id (for the SUBACK codes) */
  pendingSubscribes: Map<number, ParsedPacket> | undefined
  /** v5: PUBACK/PUBREC reason codes to put on the wire instead of aedes's, by packet id */
  ackCodes: Map<number, number> | undefined
  /** the client's outgoing acknowledgements go through rewriteAck */
  rewriting: boolean
  publishBucket: TokenBucket | undefined
}

export interface ClientLimits {
  /** Follows the broker's SUBACKs; once, when the broker exists. */
  attach(broker: Pick<Aedes, 'on'>): void
  /** Tracks every client's SUBSCRIBEs as they are parsed, before aedes handles them; once per broker. */
  install(broker: Aedes): void
  clientIdTooLong(clientId: string): boolean
  topicTooLong(topic: string): boolean
  /** Spends a token of the client's publish bucket; false when the client is over its rate. */
  takePublishToken(client: Client): boolean
  /** True when this filter of a SUBSCRIBE in progress is beyond the client's subscription quota. */
  overSubscriptionQuota(client: Client, filter: string): boolean
  /** MQTT 5: answer this QoS 1/2 PUBLISH with 0x97 instead of the code aedes chose. */
  answerQuotaExceeded(client: Client, messageId: number | undefined): void
}

/**
 * Limits that apply per client: client id length, topic length, subscriptions per session and
 * the publish rate. The connect/publish/subscribe hooks ask; this module keeps the state.
 *
 * Subscriptions are counted per distinct filter, as the session holds them (restored ones
 * included). SUBSCRIBE packets are seen as they are parsed, before aedes handles them, so two
 * SUBSCRIBEs in one TCP segment cannot both slip under the quota; entries refused by the ACL are
 * given back once the SUBACK went out (aedes's `subscribe` event).
 *
 * MQTT 5 clients get the reason codes chosen here in their acknowledgements: the rewrite is put
 * on a client's outgoing packets when it first has a code to give. A token bucket starts full
 * and never holds more than its burst, so creating it at the first PUBLISH rather than at the
 * connection gives the same tokens.
 */
export function createClientLimits(limits: Config['limits'], stats: LimitStats): ClientLimits {
  const states = new WeakMap<Client, ClientState>()
  const maxSubs = limits.maxSubscriptionsPerClient
  const rate = limits.publishRate
  const stateOf = (client: Client): ClientState => {
    let state = states.get(client)
    if (!state) {
      state = { filters: undefined, overQuota: undefined, pendingSubscribes: undefined, ackCodes: undefined, rewriting: false, publishBucket: undefined }
      states.set(client, state)
    }
    return state
  }
  const rewriteAcks = (client: Client, state: ClientState): void => {
    if (state.rewriting) return
    state.rewriting = true
    transformOutbound(client, (packet) => rewriteAck(state, packet as unknown as AckPacket) as unknown as WirePacket)
  }

  return {
    attach(broker) {
      broker.on('subscribe', (subs, client) => {
        const state = client ? states.get(client) : undefined
        if (!state) return
        for (const sub of subs) {
          state.overQuota?.delete(sub.topic)
          // refused (by the ACL, the quota or a bad filter): not held by the session
          if (sub.qos >= 0x80) state.filters?.delete(sub.topic)
        }
      })
    },
    install(broker) {
      if (maxSubs <= 0) return
      // before aedes handles the packet
      tapInbound(broker, (raw, client) => {
        const packet = raw as unknown as ParsedPacket
        if (packet.cmd === 'subscribe' && packet.subscriptions) {
          const c = clientInternals(client)
          const state = stateOf(client)
          const filters = (state.filters ??= new Set(Object.keys(c.subscriptions)))
          let refused = false
          for (const { topic } of packet.subscriptions) {
            if (filters.has(topic)) continue
            if (filters.size >= maxSubs) {
              ;(state.overQuota ??= new Set()).add(topic)
              refused = true
            } else {
              filters.add(topic)
            }
          }
          if (refused && c.version === 5 && packet.messageId !== undefined) {
            ;(state.pendingSubscribes ??= new Map()).set(packet.messageId, packet)
            rewriteAcks(client, state)
          }
        } else if (packet.cmd === 'unsubscribe' && packet.unsubscriptions) {
          const filters = states.get(client)?.filters
          if (filters) for (const topic of packet.unsubscriptions) filters.delete(topic)
        }
      })
    },

    clientIdTooLong: (clientId) => longerThan(clientId, limits.maxClientIdLength),
    topicTooLong: (topic) => longerThan(topic, limits.maxTopicLength),

    takePublishToken(client) {
      if (rate.perSecond <= 0) return true
      const state = stateOf(client)
      const bucket = (state.publishBucket ??= new TokenBucket(rate.perSecond, burstFor(rate)))
      if (bucket.take()) return true
      stats.record({ limit: 'publish_rate', clientId: client.id })
      return false
    },

    overSubscriptionQuota(client, filter) {
      return states.get(client)?.overQuota?.has(filter) ?? false
    },

    answerQuotaExceeded(client, messageId) {
      if (messageId === undefined) return
      const state = stateOf(client)
      ;(state.ackCodes ??= new Map()).set(messageId, QUOTA_EXCEEDED)
      rewriteAcks(client, state)
    },
  }
}

function rewriteAck(state: ClientState, packet: AckPacket): AckPacket {
  if (packet.messageId === undefined) return packet
  if (packet.cmd === 'puback' || packet.cmd === 'pubrec') {
    const code = state.ackCodes?.get(packet.messageId)
    if (code === undefined) return packet
    state.ackCodes?.delete(packet.messageId)
    return { ...packet, reasonCode: code }
  }
  if (packet.cmd === 'suback' && packet.granted) {
    const subscribe = state.pendingSubscribes?.get(packet.messageId)
    if (!subscribe?.subscriptions) return packet
    state.pendingSubscribes?.delete(packet.messageId)
    // aedes answers in the order of its (de-duplicated) subscription list
    const granted = packet.granted.map((code, i) => {
      const topic = subscribe.subscriptions?.[i]?.topic
      return topic !== undefined && state.overQuota?.has(topic) === true ? QUOTA_EXCEEDED : code
    })
    return { ...packet, granted }
  }
  return packet
}

/** UTF-8 length > max; a UTF-16 code unit is at most 3 bytes, so short strings skip the count. */
function longerThan(value: string, max: number): boolean {
  return value.length * 3 > max && utf8Length(value) > max
}

