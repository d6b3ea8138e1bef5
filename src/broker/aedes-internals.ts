import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import type { IncomingMessage } from 'node:http'
import type { EventEmitter } from 'node:events'
import type { Duplex, Writable } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import type { TopicMatcher } from '../mqtt/match-cache.js'
import type { OutgoingPublish } from '../mqtt/publish-encoder.js'

// The fields of aedes 2.0.0-beta.1's objects that mqlite reads or sets and that aedes's typings
// do not declare, in one place: re-check this file (and patches/) when the pinned version changes.

/** A subscription as aedes keeps it in `client.subscriptions[filter]`. */
export interface SubscriptionEntry {
  qos: number
  /** Subscription Identifier */
  si?: number
  /** No Local */
  nl?: boolean
}

export type DeliverFunction = (packet: AedesPublishPacket & { clientId?: string; nl?: boolean }, callback: () => void) => void

export interface ClientInternals {
  id: string
  broker: Aedes
  /** protocol level from CONNECT: 3, 4 or 5 */
  version: number | null
  /** the session ends with the connection (v5: Session Expiry Interval 0) */
  clean: boolean
  closed: boolean
  connected: boolean
  connackSent?: boolean
  conn: Writable
  sessionExpiryInterval: number
  /** v5 CONNECT properties aedes keeps */
  receiveMaximum?: number
  maximumPacketSize?: number
  subscriptions: Record<string, SubscriptionEntry>
  /** highest broker counter delivered, per broker id (aedes's dedupe) */
  duplicates: Record<string, number>
  deliver0: DeliverFunction
  deliverQoS: DeliverFunction
  _parser: EventEmitter
  /** MQTT 5 inbound topic aliases (alias -> topic name), read and written by aedes's publish handler */
  _topicAliases: Map<number, string>
  /** next outgoing packet id */
  _nextId: number
  /** v5 Clean Start of the CONNECT */
  _cleanStart?: boolean
  /** v5 Server Keep Alive to announce and enforce */
  _serverKeepAlive?: number
  _assignedClientId?: string
  /** read by the patched write(): the last look at each outgoing packet */
  transformOutgoing?: (packet: { cmd: string; [field: string]: unknown }) => { cmd: string; [field: string]: unknown }
}

export interface BrokerInternals {
  clients: Record<string, Client | undefined>
  brokers: Record<string, number>
  handle: (conn: Duplex, req?: IncomingMessage) => Client
  /** mqemitter; its qlobber holds every live subscription */
  mq: { _matcher: TopicMatcher }
  /** mqlite's encoder of outgoing packets, read by the patched write.js; undefined: mqtt-packet's */
  encodeOutgoing?: (packet: OutgoingPublish, protocolVersion: number) => Buffer | undefined
  /**
   * read by the patched SUBSCRIBE handler: the broker id of the retained messages it sends to a
   * persistent session, which are queued (see retainedCopyBrokerId)
   */
  retainedCopyBrokerId?: string
  /** client ids whose session a new connection is taking over */
  _takingOver: Set<string>
  /** cancel this node's Session Expiry timer of a client id */
  clearSessionExpiry(clientId: string): void
  /** cancel this node's Will Delay timer of a client id */
  clearDelayedWill(clientId: string): void
}

export const clientInternals = (client: Client): ClientInternals => client as unknown as ClientInternals

/**
 * The broker id on the retained messages a SUBSCRIBE sends to a persistent session: they are
 * queued like live ones (so they survive a disconnection unacknowledged), but under an id of their
 * own, so that aedes's per-broker duplicate check never mixes them with live messages.
 */
export const retainedCopyBrokerId = (broker: Aedes): string => `${broker.id}:retained`
export const brokerInternals = (broker: Aedes): BrokerInternals => broker as unknown as BrokerInternals

/**
 * Writes a packet straight to a client's connection, outside aedes's write queue, in the
 * client's protocol version; false if the connection is gone. Not mqtt-packet's writeToStream:
 * it corks the stream until the next tick, and aedes may destroy the socket before that.
 */
export function writeDirect(client: Client, packet: mqttPacket.Packet): boolean {
  const c = clientInternals(client)
  if (!c.connected || c.closed || c.conn.destroyed) return false
  const protocolVersion = c.version === 3 || c.version === 5 ? c.version : 4
  while (c.conn.writableCorked > 0) c.conn.uncork()
  c.conn.write(mqttPacket.generate(packet, { protocolVersion }))
  return true
}
