import type { Client } from 'aedes'
import { tapInbound } from '../packet-taps.js'
import { clientInternals } from '../aedes-internals.js'

/** DISCONNECT reason: the client sent more unacknowledged QoS 1/2 PUBLISH than allowed. */
const RECEIVE_MAXIMUM_EXCEEDED = 0x93

interface InboundState {
  qos1: number
  qos2: Set<number>
}

const states = new WeakMap<Client, InboundState>()

interface ParsedPacket {
  cmd: string
  qos?: number
  messageId?: number
}

/**
 * [MQTT-3.3.4-8] Inbound Receive Maximum (MQTT 5): a client may have at most the advertised
 * number of QoS 1/2 PUBLISH packets unacknowledged; one more is a protocol violation answered
 * with DISCONNECT 0x93. QoS 1 counts until the broker finished processing (PUBACK follows
 * right after), QoS 2 until PUBREL.
 */
export function installInboundQuota(client: Client, receiveMaximum: number): void {
  const state: InboundState = { qos1: 0, qos2: new Set() }
  states.set(client, state)
  const c = clientInternals(client)
  tapInbound(client, (raw) => {
    const packet = raw as unknown as ParsedPacket
    if (packet.cmd === 'publish') {
      if (packet.qos === 1) state.qos1++
      else if (packet.qos === 2 && packet.messageId !== undefined) state.qos2.add(packet.messageId)
      else return
      if (c.version === 5 && state.qos1 + state.qos2.size > receiveMaximum) {
        client.disconnect({ reasonCode: RECEIVE_MAXIMUM_EXCEEDED, properties: { reasonString: 'Receive Maximum exceeded' } }, () => {})
      }
    } else if (packet.cmd === 'pubrel' && packet.messageId !== undefined) {
      state.qos2.delete(packet.messageId)
    }
  })
}

/** A QoS 1 PUBLISH of this client has been processed (published, or refused with a reason code). */
export function inboundQoS1Done(client: Client | null): void {
  const state = client ? states.get(client) : undefined
  if (state && state.qos1 > 0) state.qos1--
}
