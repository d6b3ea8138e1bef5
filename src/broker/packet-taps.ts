import type { Aedes, Client } from 'aedes'
import type { EventEmitter } from 'node:events'
import { clientInternals } from './aedes-internals.js'
import { onClientCreated } from './client-setup.js'

/** A packet as mqtt-packet parses it or aedes writes it; taps read the fields they know. */
export interface WirePacket {
  cmd: string
  [field: string]: unknown
}

/**
 * Sees each packet a client sends, as it is parsed and before aedes handles it. Returning true
 * keeps the packet from aedes (the tap answered it itself).
 */
export type InboundTap = (packet: WirePacket, client: Client) => boolean | void

/** Rewrites a packet on its way to the wire. It must return a copy, never change `packet`. */
export type OutboundTransform = (packet: WirePacket) => WirePacket

type ParserHandler = (this: EventEmitter, packet: WirePacket) => void

/** aedes's parser as the dispatcher sees it: aedes sets `client` on it. */
interface TappedParser extends EventEmitter {
  client: Client
  /** the patched mqtt-packet calls it for each parsed packet instead of emitting 'packet' */
  onPacket: ((this: TappedParser, packet: WirePacket) => void) | undefined
}

// Inbound taps are per broker, not per client: an idle connection then costs no closure, array or
// map entry here. Each client's parser calls the one shared `dispatch` directly instead of
// emitting to aedes's own listener (an emit gathers its arguments into an array per packet
// wherever V8 has not inlined it).
const brokerTaps = new WeakMap<object, InboundTap[]>()
/** aedes's parser listener: one module function for every client (checked as each client comes) */
let aedesHandle: ParserHandler | undefined

function dispatch(this: TappedParser, packet: WirePacket): void {
  const client = this.client
  // Packets parsed from the same read after the connection was ended go nowhere: aedes stops
  // listening only when it closes the client, which follows its socket's destruction (at a
  // DISCONNECT, after which a client may send nothing [MQTT-3.14.4-2]) a turn later
  if (client.closed || client.conn.destroyed) return
  const taps = brokerTaps.get(clientInternals(client).broker)
  if (taps !== undefined) for (let i = 0; i < taps.length; i++) if (taps[i]!(packet, client) === true) return
  ;(aedesHandle as ParserHandler).call(this, packet)
}

function hookParser(client: Client): void {
  const parser = clientInternals(client)._parser as TappedParser
  if (parser.onPacket === dispatch) return
  const [handle] = parser.listeners('packet') as ParserHandler[]
  if (!handle) throw new Error('aedes client has no parser listener to tap')
  if (aedesHandle === undefined) aedesHandle = handle
  // aedes 2.0.0-beta.1 gives every client the same module-level listener; anything else is a
  // version this module was not written for
  else if (handle !== aedesHandle) throw new Error('aedes client has a parser listener other than aedes\'s own')
  parser.removeListener('packet', handle)
  parser.onPacket = dispatch
}

/**
 * Adds a tap on the packets every client of the broker sends, from the client's first byte;
 * taps run in the order they were added.
 */
export function tapInbound(broker: Aedes, tap: InboundTap): void {
  let taps = brokerTaps.get(broker)
  if (!taps) {
    taps = []
    brokerTaps.set(broker, taps)
    onClientCreated(broker, hookParser)
  }
  taps.push(tap)
}

/**
 * Hands aedes a packet a tap held back earlier (a CONNECT kept until enhanced authentication is
 * done), as if it had just been parsed. The taps do not see it again.
 */
export function releaseInbound(client: Client, packet: WirePacket): void {
  const parser = clientInternals(client)._parser as TappedParser
  ;(aedesHandle as ParserHandler).call(parser, packet)
}

/**
 * Adds a rewrite of the packets sent to the client; rewrites run in the order they were added.
 * Installed only when a feature needs it: clients without any keep aedes's plain write path.
 */
export function transformOutbound(client: Client, transform: OutboundTransform): void {
  const c = clientInternals(client)
  const previous = c.transformOutgoing
  c.transformOutgoing = previous === undefined ? transform : (packet) => transform(previous(packet))
}
