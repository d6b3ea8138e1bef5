import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import { outboundWindow, type OutboundWindow } from './flow-control.js'
import { onClientCreated } from '../client-setup.js'
import { exceedsPacketSize } from './packet-size.js'
import { topicMatches } from '../../mqtt/topic-match.js'
import { clientInternals, retainedCopyBrokerId, type ClientInternals, type DeliverFunction } from '../aedes-internals.js'

export type DropReason = 'not_authorized' | 'too_large'

export interface DeliveryOptions {
  /** Per-delivery read check (ACL); leave out when reads are never restricted. */
  canReceive?: (client: Client, topic: string) => boolean
  /** Counts a message dropped for one subscriber. Must not allocate: it runs per delivery. */
  onDrop: (reason: DropReason) => void
}

/** What aedes hands to a delivery function: its packet plus the fields it adds on the way. */
export type DeliveredPacket = Parameters<DeliverFunction>[0]
type Deliver = DeliverFunction

/** aedes's own two delivery functions of a client, which the planner replaces. */
interface Sends {
  deliver0: Deliver
  deliverQoS: Deliver
  window: OutboundWindow
}

const sendsByClient = new WeakMap<Client, Sends>()

/**
 * aedes calls one delivery function per matching subscription and keeps the first call (dedupe by
 * broker counter), so with overlapping subscriptions the QoS, the Subscription Identifiers and No
 * Local all came from whichever subscription mqemitter listed first. This replaces each client's
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
 * persistent session. Run after installOutboundWindows: each client's window must exist.
 */
export function planDeliveries(broker: Aedes, options: DeliveryOptions): void {
  const { canReceive, onDrop } = options
  // retained messages sent at SUBSCRIBE: no broker id, or this one (to a persistent session)
  const retainedCopy = retainedCopyBrokerId(broker)
  // One closure per client; everything else is shared.
  const plan = (client: Client, c: ClientInternals, sends: Sends, packet: DeliveredPacket, callback: () => void): void => {
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
    if (grantedQoS < 0) return drop(c, sends, packet, undefined, callback)
    if (canReceive && !canReceive(client, packet.topic)) return drop(c, sends, packet, 'not_authorized', callback)
    packet.nl = false
    // retained-on-subscribe copies keep the identifier aedes took from SUBSCRIBE
    if (packet.brokerId && packet.brokerId !== retainedCopy) setSubscriptionIdentifiers(packet, ids)
    if (packet.qos > grantedQoS) packet.qos = grantedQoS as 0 | 1 | 2
    if (c.maximumPacketSize !== undefined && exceedsPacketSize(packet, c.maximumPacketSize, c.version ?? 4)) {
      return drop(c, sends, packet, 'too_large', callback)
    }
    if (packet.qos === 0) return sends.window.submit(packet, sends.deliver0, callback, false)
    sends.window.submit(packet, sends.deliverQoS, callback)
  }
  const drop = (c: ClientInternals, sends: Sends, packet: DeliveredPacket, reason: DropReason | undefined, callback: () => void): void => {
    if (reason) onDrop(reason)
    packet.clientId = c.id
    packet.nl = true
    // aedes's deliverQoS hands QoS 0 packets to client.deliver0, which is the planner: route by
    // QoS here so the originals never call back into it.
    ;(packet.qos > 0 ? sends.deliverQoS : sends.deliver0)(packet, callback)
  }
  onClientCreated(broker, (client) => {
    const c = clientInternals(client)
    const window = outboundWindow(client)
    if (!window) throw new Error('planDeliveries: the client has no outbound window')
    const sends: Sends = { deliver0: c.deliver0, deliverQoS: c.deliverQoS, window }
    sendsByClient.set(client, sends)
    const planned: Deliver = (packet, callback) => plan(client, c, sends, packet, callback)
    c.deliver0 = planned
    c.deliverQoS = planned
  })
}

/**
 * Delivery to this client without the subscription planning, for copies whose subscription the
 * planner does not see (shared subscriptions choose their member themselves). QoS 1/2 copies
 * still go through the client's outbound window. False (and nothing done) for a client the
 * planner does not know.
 */
export function deliverDirect(client: Client, packet: DeliveredPacket, callback: () => void): boolean {
  const sends = sendsByClient.get(client)
  if (!sends) return false
  if (packet.qos === 0) sends.window.submit(packet, sends.deliver0, callback, false)
  else sends.window.submit(packet, sends.deliverQoS, callback)
  return true
}

/** Whether deliverDirect() can reach this client. */
export function canDeliverDirect(client: Client): boolean {
  return sendsByClient.has(client)
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
