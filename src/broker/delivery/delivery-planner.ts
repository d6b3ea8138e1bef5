import type { AedesPublishPacket, Client } from 'aedes'
import type { OutboundWindow } from './flow-control.js'
import { exceedsPacketSize } from './packet-size.js'
import { topicMatches } from '../../mqtt/topic-match.js'
import { clientInternals, type ClientInternals, type DeliverFunction } from '../aedes-internals.js'

export type DropReason = 'not_authorized' | 'too_large'

export interface DeliveryOptions {
  /** Per-delivery read check (ACL); leave out when reads are never restricted. */
  canReceive?: (client: Client, topic: string) => boolean
  /** Counts a message dropped for one subscriber. Must not allocate: it runs per delivery. */
  onDrop: (reason: DropReason) => void
  window: OutboundWindow
}

/** What aedes hands to a delivery function: its packet plus the fields it adds on the way. */
export type DeliveredPacket = Parameters<DeliverFunction>[0]
export type Deliver = DeliverFunction

/**
 * aedes calls one delivery function per matching subscription and keeps the first call (dedupe by
 * broker counter), so with overlapping subscriptions the QoS, the Subscription Identifiers and No
 * Local all came from whichever subscription mqemitter listed first. This replaces the client's
 * two delivery functions (captured by aedes at subscribe time, so it must run before any
 * subscribe) with one that looks at every subscription of the client matching the topic:
 * - [MQTT-3.3.4-2] QoS = min(publish QoS, highest granted QoS among them), never above a grant
 *   ([MQTT-3.8.4-8], wildcards included);
 * - [MQTT-3.3.4-3] one copy carrying every matching Subscription Identifier;
 * - [MQTT-3.8.3-3] No Local drops the copy only if every matching subscription asked for it;
 * - [MQTT-3.1.2-25] a packet larger than the client's Maximum Packet Size is dropped for that
 *   client as if it had been delivered;
 * - every copy goes through the client's outbound window (Receive Maximum, and the gate that
 *   holds live messages until a resumed session's queue has been sent).
 * Dropped copies still go to aedes, marked No Local, so it also clears a copy queued for a
 * persistent session.
 */
export function planDeliveries(client: Client, options: DeliveryOptions): void {
  const c = clientInternals(client)
  const deliver0 = c.deliver0
  const deliverQoS = c.deliverQoS
  // aedes's deliverQoS hands QoS 0 packets to client.deliver0, which is `planned` below: route by
  // QoS here so the originals never call back into it.
  const original: Deliver = (packet, callback) => (packet.qos > 0 ? deliverQoS : deliver0)(packet, callback)
  const drop = (packet: DeliveredPacket, reason: DropReason | undefined, callback: () => void): void => {
    if (reason) options.onDrop(reason)
    packet.clientId = c.id
    packet.nl = true
    original(packet, callback)
  }
  const { window, canReceive } = options
  const planned: Deliver = (packet, callback) => {
    // A second matching subscription of the same message: the first call delivered it.
    if (isDuplicate(c, packet)) return void setImmediate(callback)
    const own = packet.clientId === c.id
    let grantedQoS = -1
    let ids: number[] | undefined
    for (const filter in c.subscriptions) {
      if (!topicMatches(filter, packet.topic)) continue
      const sub = c.subscriptions[filter]!
      if (own && sub.nl === true) continue
      if (sub.qos > grantedQoS) grantedQoS = sub.qos
      if (sub.si !== undefined) (ids ??= []).push(sub.si)
    }
    if (grantedQoS < 0) return drop(packet, undefined, callback)
    if (canReceive && !canReceive(client, packet.topic)) return drop(packet, 'not_authorized', callback)
    packet.nl = false
    // retained-on-subscribe copies (no broker id) keep the identifier aedes took from SUBSCRIBE
    if (packet.brokerId) setSubscriptionIdentifiers(packet, ids)
    if (packet.qos > grantedQoS) packet.qos = grantedQoS as 0 | 1 | 2
    if (c.maximumPacketSize !== undefined && exceedsPacketSize(packet, c.maximumPacketSize, c.version ?? 4)) {
      return drop(packet, 'too_large', callback)
    }
    if (packet.qos === 0) return window.submit(packet, deliver0, callback, false)
    window.submit(packet, deliverQoS, callback)
  }
  c.deliver0 = planned
  c.deliverQoS = planned
  direct.set(client, {
    deliver0: (packet, callback) => window.submit(packet, deliver0, callback, false),
    deliverQoS: (packet, callback) => window.submit(packet, deliverQoS, callback),
  })
}

/**
 * Delivery to this client without the subscription planning, for copies whose subscription the
 * planner does not see (shared subscriptions choose their member themselves). QoS 1/2 copies
 * still go through the client's outbound window.
 */
export interface DirectDelivery {
  deliver0: Deliver
  deliverQoS: Deliver
}

const direct = new WeakMap<Client, DirectDelivery>()

export function directDelivery(client: Client): DirectDelivery | undefined {
  return direct.get(client)
}

function isDuplicate(c: ClientInternals, packet: DeliveredPacket): boolean {
  const brokerId = packet.brokerId
  return brokerId !== undefined && brokerId !== null && (c.duplicates[brokerId] ?? 0) >= packet.brokerCounter
}

function setSubscriptionIdentifiers(packet: AedesPublishPacket, ids: number[] | undefined): void {
  const properties = packet.properties as Record<string, unknown> | undefined
  if (ids === undefined) {
    if (properties?.subscriptionIdentifier !== undefined) {
      const { subscriptionIdentifier: _, ...rest } = properties
      packet.properties = rest
    }
    return
  }
  // a fresh object: the properties object is shared by every subscriber's copy
  packet.properties = { ...properties, subscriptionIdentifier: ids.length === 1 ? ids[0] : ids } as AedesPublishPacket['properties']
}
