import type { Aedes, Client } from 'aedes'
import { tapInbound } from '../packet-taps.js'
import { clientInternals } from '../aedes-internals.js'

/** DISCONNECT reason: the client sent more unacknowledged QoS 1/2 PUBLISH than allowed. */
const RECEIVE_MAXIMUM_EXCEEDED = 0x93

interface InboundState {
  qos1: number
  /** allocated at the first QoS 2 PUBLISH */
  qos2: Set<number> | undefined
}

/** Only clients that sent a QoS 1/2 PUBLISH have an entry: an idle connection costs nothing here. */
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
 * right after), QoS 2 until PUBREL. Installed once, for every client of the broker.
 */
export function installInboundQuota(broker: Aedes, receiveMaximum: number): void {
  tapInbound(broker, (raw, client) => {
    const packet = raw as unknown as ParsedPacket
    if (packet.cmd === 'publish') {
      let state: InboundState
      if (packet.qos === 1) {
        state = stateOf(client)
        state.qos1++
      } else if (packet.qos === 2 && packet.messageId !== undefined) {
        state = stateOf(client)
        ;(state.qos2 ??= new Set()).add(packet.messageId)
      } else return
      if (clientInternals(client).version === 5 && state.qos1 + (state.qos2?.size ?? 0) > receiveMaximum) {
        client.disconnect({ reasonCode: RECEIVE_MAXIMUM_EXCEEDED, properties: { reasonString: 'Receive Maximum exceeded' } }, () => {})
      }
    } else if (packet.cmd === 'pubrel' && packet.messageId !== undefined) {
      states.get(client)?.qos2?.delete(packet.messageId)
    }
  })
}

function stateOf(client: Client): InboundState {
  let state = states.get(client)
  if (!state) {
    state = { qos1: 0, qos2: undefined }
    states.set(client, state)
  }
  return state
}

/** A QoS 1 PUBLISH of this client has been processed (published, or refused with a reason code). */
export function inboundQoS1Done(client: Client | null): void {
  const state = client ? states.get(client) : undefined
  if (state && state.qos1 > 0) state.qos1--
}
