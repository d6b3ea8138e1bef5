import type { Client } from 'aedes'
import type { EventEmitter } from 'node:events'
import { clientInternals } from './aedes-internals.js'

/** A packet as mqtt-packet parses it or aedes writes it; taps read the fields they know. */
export interface WirePacket {
  cmd: string
  [field: string]: unknown
}

/**
 * Sees each packet a client sends, as it is parsed and before aedes handles it. Returning true
 * keeps the packet from aedes (the tap answered it itself).
 */
export type InboundTap = (packet: WirePacket) => boolean | void

/** Rewrites a packet on its way to the wire. It must return a copy, never change `packet`. */
export type OutboundTransform = (packet: WirePacket) => WirePacket

interface Taps {
  inbound: InboundTap[]
  outbound: OutboundTransform[]
  /** aedes's own handling of a parsed packet */
  handle: (packet: WirePacket) => void
}

const taps = new WeakMap<Client, Taps>()

/**
 * The one place that hooks a client's packet streams. aedes's own parser listener is replaced by
 * a dispatcher that runs the taps first (one listener: a second would make every emit copy the
 * listener array), and its write() runs the outbound transforms in order.
 */
function tapsOf(client: Client): Taps {
  let t = taps.get(client)
  if (t) return t
  const c = clientInternals(client)
  const [handle] = c._parser.listeners('packet') as Array<(this: EventEmitter, packet: WirePacket) => void>
  if (!handle) throw new Error('aedes client has no parser listener to tap')
  const own: Taps = { inbound: [], outbound: [], handle: (packet) => handle.call(c._parser, packet) }
  t = own
  taps.set(client, own)
  c._parser.removeListener('packet', handle)
  c._parser.on('packet', function dispatch(this: EventEmitter, packet: WirePacket) {
    for (const tap of own.inbound) if (tap(packet) === true) return
    handle.call(this, packet)
  })
  return own
}

/** Adds a tap on the packets the client sends; taps run in the order they were added. */
export function tapInbound(client: Client, tap: InboundTap): void {
  tapsOf(client).inbound.push(tap)
}

/**
 * Hands aedes a packet a tap held back earlier (a CONNECT kept until enhanced authentication is
 * done), as if it had just been parsed. The taps do not see it again.
 */
export function releaseInbound(client: Client, packet: WirePacket): void {
  tapsOf(client).handle(packet)
}

/** Adds a rewrite of the packets sent to the client; rewrites run in the order they were added. */
export function transformOutbound(client: Client, transform: OutboundTransform): void {
  const { outbound } = tapsOf(client)
  outbound.push(transform)
  // installed with the first transform: clients without any keep aedes's plain write path
  const c = clientInternals(client)
  c.transformOutgoing ??= (packet) => {
    let out = packet
    for (const next of outbound) out = next(out)
    return out
  }
}
