import type { Aedes, Client } from 'aedes'
import mqttPacket from 'mqtt-packet'
import type { AuthStep, EnhancedAuthProvider, EnhancedOutcome } from '../auth/enhanced/authenticator.js'
import { clientInternals } from './aedes-internals.js'
import { releaseInbound, tapInbound, transformOutbound, type WirePacket } from './packet-taps.js'

// MQTT 5 enhanced authentication (§4.12, AUTH §3.15) around aedes, which on its own refuses any
// CONNECT naming an Authentication Method with 0x8C. A CONNECT naming a method the authorizer
// offers is held back from aedes while AUTH packets carry the exchange; when it ends, the CONNECT
// goes on to aedes without the method, and the outcome waits for aedes's authenticate hook (see
// create-aedes.ts), which asks the authorizer for the verdict: the failure delay, counters and the
// identity the ACL sees stay in one place. The success CONNACK gets the method and the final data
// on its way out.
//
// Time limit: while the CONNECT is held, aedes's connect timer (mqtt.connectTimeout) still runs
// and closes a connection whose exchange has not finished. A re-authentication gets the same time.

const SUCCESS = 0x00
const CONTINUE_AUTHENTICATION = 0x18
const REAUTHENTICATE = 0x19
const PROTOCOL_ERROR = 0x82
const NOT_AUTHORIZED = 0x87

export interface EnhancedAuthOptions {
  /** the authorizer's methods; undefined: none offered (aedes refuses every method with 0x8C) */
  provider: EnhancedAuthProvider | undefined
  /** milliseconds a re-authentication may take */
  timeout: number
  /** protocol errors and authenticator failures, for the log (aedes's clientError) */
  report: (client: Client, err: Error) => void
}

type Continuation = (data: Buffer | undefined) => Promise<AuthStep>

/** Where a connection is in §4.12; one value rather than flags. */
type Phase =
  | { name: 'awaiting-connect' }
  /** CONNECT without a method (or not MQTT 5): AUTH is a protocol error [MQTT-4.12.0-7] */
  | { name: 'plain' }
  /** the exchange before CONNACK; `waiting` is set while the server waits for the client's AUTH */
  | { name: 'authenticating'; method: string; connect: WirePacket; waiting: Continuation | undefined }
  /** the CONNECT went on to aedes; the CONNACK is due */
  | { name: 'concluding'; method: string; finalData: Buffer | undefined }
  | { name: 'authenticated'; method: string }
  | { name: 'reauthenticating'; method: string; waiting: Continuation | undefined; timer: NodeJS.Timeout }
  | { name: 'ended' }

interface AuthPacket extends WirePacket {
  reasonCode?: number
  properties?: { authenticationMethod?: string; authenticationData?: Buffer }
}

const outcomes = new WeakMap<Client, EnhancedOutcome>()

/**
 * The outcome of the exchange a held CONNECT finished, once: aedes's authenticate hook calls this
 * and, when there is one, asks for the authorizer's verdict on it instead of checking a password.
 */
export function takeEnhancedOutcome(client: Client): EnhancedOutcome | undefined {
  const outcome = outcomes.get(client)
  outcomes.delete(client)
  return outcome
}

type Authenticator = NonNullable<ReturnType<EnhancedAuthProvider['authenticator']>>

/** The exchange state of one connection: `tap` sees its packets; `start` begins with a CONNECT. */
interface Exchange {
  tap(packet: WirePacket): boolean
  start(packet: WirePacket, method: string, authenticator: Authenticator): boolean
}

/**
 * Installs the AUTH handling on every client of the broker; call it before other inbound taps.
 * A connection costs nothing here until it needs the exchange: a CONNECT naming a method offered,
 * or an AUTH packet (then a protocol error, answered by the same state machine).
 */
export function installEnhancedAuth(broker: Aedes, options: EnhancedAuthOptions): void {
  const exchanges = new WeakMap<Client, Exchange>()
  /** clients whose CONNECT named no method offered (phase 'plain'); the rest await their CONNECT */
  const plain = new WeakSet<Client>()
  const exchangeOf = (client: Client): Exchange => {
    let exchange = exchanges.get(client)
    if (!exchange) {
      exchange = createExchange(client, options, plain.has(client) ? 'plain' : 'awaiting-connect')
      exchanges.set(client, exchange)
    }
    return exchange
  }
  tapInbound(broker, (packet, client) => {
    const exchange = exchanges.get(client)
    if (exchange) return exchange.tap(packet)
    if (packet.cmd === 'auth') return exchangeOf(client).tap(packet)
    // awaiting the CONNECT, or 'plain': nothing to do for any other packet
    if (packet.cmd !== 'connect' || plain.has(client)) return false
    const offer = offered(packet, options.provider)
    if (!offer) {
      plain.add(client)
      return false
    }
    return exchangeOf(client).start(packet, offer.method, offer.authenticator)
  })
}

/**
 * The method of a first CONNECT when the provider offers it; undefined for no method, or one not
 * offered: aedes answers the latter with CONNACK 0x8C and closes [MQTT-4.12.0-1].
 */
function offered(packet: WirePacket, provider: EnhancedAuthProvider | undefined): { method: string; authenticator: Authenticator } | undefined {
  const method = packet.protocolVersion === 5 ? (packet as AuthPacket).properties?.authenticationMethod : undefined
  const authenticator = method === undefined ? undefined : provider?.authenticator(method)
  return method === undefined || !authenticator ? undefined : { method, authenticator }
}

function createExchange(client: Client, { provider, timeout, report: reportFor }: EnhancedAuthOptions, initial: 'awaiting-connect' | 'plain'): Exchange {
  const c = clientInternals(client)
  let phase: Phase = { name: initial }
  const gone = (): boolean => c.closed || c.conn.destroyed
  const report = (err: Error): void => reportFor(client, err)

  c.conn.once('close', () => {
    if (phase.name === 'reauthenticating') clearTimeout(phase.timer)
    phase = { name: 'ended' }
  })

  return {
    tap(packet) {
      if (packet.cmd === 'connect') return onConnect(packet)
      if (packet.cmd === 'auth') {
        onAuth(packet as AuthPacket)
        return true
      }
      if (phase.name !== 'authenticating') return false
      // [MQTT-3.1.2-30] only AUTH or DISCONNECT until CONNACK
      if (packet.cmd === 'disconnect') end()
      else protocolError(`${packet.cmd.toUpperCase()} during enhanced authentication, before CONNACK [MQTT-3.1.2-30]`)
      return true
    },
    start,
  }

  function start(packet: WirePacket, method: string, authenticator: Authenticator): boolean {
    phase = { name: 'authenticating', method, connect: packet, waiting: undefined }
    transformOutbound(client, addMethodToConnack)
    advance(authenticator.start(String(packet.clientId ?? ''), (packet as AuthPacket).properties?.authenticationData))
    return true
  }

  function onConnect(packet: WirePacket): boolean {
    // A second CONNECT is a protocol error [MQTT-3.1.0-2]. aedes refuses it once it has the first;
    // while the first is held here, aedes has not seen it and would take the second as the first.
    if (phase.name === 'authenticating') {
      protocolError('a second CONNECT during enhanced authentication [MQTT-3.1.0-2]')
      return true
    }
    if (phase.name !== 'awaiting-connect') return false
    const offer = offered(packet, provider)
    if (!offer) {
      phase = { name: 'plain' }
      return false
    }
    return start(packet, offer.method, offer.authenticator)
  }

  function onAuth(packet: AuthPacket): void {
    const method = packet.properties?.authenticationMethod
    const data = packet.properties?.authenticationData
    switch (phase.name) {
      case 'authenticating':
      case 'reauthenticating': {
        // The client answers the server's AUTH 0x18 with AUTH 0x18 [MQTT-4.12.0-3], same method [MQTT-4.12.0-5]
        if (!phase.waiting) return protocolError('AUTH before the server asked for more data [MQTT-4.12.0-3]')
        if (packet.reasonCode !== CONTINUE_AUTHENTICATION) return protocolError('an AUTH answering the server must have reason code 0x18 [MQTT-4.12.0-3]')
        if (method !== phase.method) return protocolError('AUTH with another Authentication Method than the CONNECT [MQTT-4.12.0-5]')
        const next = phase.waiting
        phase.waiting = undefined
        advance(next(data))
        return
      }
      case 'authenticated': {
        // [MQTT-4.12.1-1] re-authentication: AUTH 0x19 with the method the connection authenticated with
        if (packet.reasonCode !== REAUTHENTICATE) return protocolError('only AUTH 0x19 may start a re-authentication [MQTT-4.12.1-1]')
        if (method !== phase.method) return protocolError('re-authentication must use the Authentication Method of the CONNECT [MQTT-4.12.1-1]')
        const authenticator = provider?.authenticator(method)
        if (!authenticator) return refuseReauthentication()
        const timer = setTimeout(() => refuseReauthentication('re-authentication did not finish in time'), timeout).unref()
        phase = { name: 'reauthenticating', method, waiting: undefined, timer }
        advance(authenticator.start(client.id, data))
        return
      }
      case 'concluding':
        return protocolError('AUTH after the authentication exchange ended, before CONNACK')
      case 'ended':
        return // the connection is closing already
      default:
        return protocolError('AUTH on a connection whose CONNECT had no Authentication Method [MQTT-4.12.0-7]')
    }
  }

  function advance(pending: Promise<AuthStep>): void {
    pending.then(
      (step) => {
        if (gone() || (phase.name !== 'authenticating' && phase.name !== 'reauthenticating')) return
        if (step.kind === 'continue') {
          phase.waiting = step.next
          // [MQTT-4.12.0-2] 0x18 and [MQTT-4.12.0-5] the CONNECT's method in every AUTH
          send({ cmd: 'auth', reasonCode: CONTINUE_AUTHENTICATION, properties: { authenticationMethod: phase.method, authenticationData: step.data } })
          return
        }
        if (phase.name === 'authenticating') concludeConnect(phase, step)
        else concludeReauthentication(phase, step)
      },
      (err: unknown) => {
        report(new Error('enhanced authenticator failed', { cause: err }))
        if (phase.name === 'authenticating') concludeConnect(phase, { kind: 'failure', reason: 'authenticator error' })
        else if (phase.name === 'reauthenticating') concludeReauthentication(phase, { kind: 'failure', reason: 'authenticator error' })
      },
    )
  }

  /** Sends the held CONNECT on to aedes, without the method aedes would refuse, with the outcome. */
  function concludeConnect(current: Extract<Phase, { name: 'authenticating' }>, step: Exclude<AuthStep, { kind: 'continue' }>): void {
    const { method, connect } = current
    let outcome: EnhancedOutcome =
      step.kind === 'success'
        ? { kind: 'success', method, username: step.username, reauthentication: false }
        : { kind: 'failure', method, username: step.username, reason: step.reason, reauthentication: false }
    // A User Name in the CONNECT must name the user the exchange proved (the password is ignored).
    if (outcome.kind === 'success' && typeof connect.username === 'string' && connect.username !== outcome.username) {
      outcome = { kind: 'failure', method, username: outcome.username, reason: 'CONNECT user name differs from the authenticated user', reauthentication: false }
    }
    outcomes.set(client, outcome)
    phase = { name: 'concluding', method, finalData: step.kind === 'success' ? step.data : undefined }
    const { authenticationMethod: _method, authenticationData: _data, ...properties } = (connect as AuthPacket).properties ?? {}
    const { password: _password, ...rest } = connect
    releaseInbound(client, { ...rest, username: outcome.username, properties } as WirePacket)
  }

  function concludeReauthentication(current: Extract<Phase, { name: 'reauthenticating' }>, step: Exclude<AuthStep, { kind: 'continue' }>): void {
    clearTimeout(current.timer)
    const { method } = current
    if (!provider) return refuseReauthentication()
    const outcome: EnhancedOutcome =
      step.kind === 'success'
        ? { kind: 'success', method, username: step.username, reauthentication: true }
        : { kind: 'failure', method, username: step.username, reason: step.reason, reauthentication: true }
    // other packets keep flowing under the previous authentication meanwhile (§4.12.1)
    provider.conclude(client, outcome).then(
      (accepted) => {
        if (gone() || phase.name !== 'reauthenticating') return
        if (!accepted) return refuseReauthentication()
        phase = { name: 'authenticated', method }
        const data = step.kind === 'success' ? step.data : undefined
        send({ cmd: 'auth', reasonCode: SUCCESS, properties: { authenticationMethod: method, ...(data ? { authenticationData: data } : {}) } })
      },
      () => {
        if (!gone() && phase.name === 'reauthenticating') refuseReauthentication()
      },
    )
  }

  /** [MQTT-4.12.1-2] a failed re-authentication ends the connection, with DISCONNECT 0x87. */
  function refuseReauthentication(reasonString = 'not authorized: re-authentication failed'): void {
    if (phase.name === 'reauthenticating') clearTimeout(phase.timer)
    phase = { name: 'ended' }
    sendAndClose({ cmd: 'disconnect', reasonCode: NOT_AUTHORIZED, properties: { reasonString } })
  }

  function addMethodToConnack(packet: WirePacket): WirePacket {
    if (packet.cmd !== 'connack' || phase.name !== 'concluding') return packet
    const { method, finalData } = phase
    if (((packet.reasonCode as number | undefined) ?? 0) !== SUCCESS) {
      phase = { name: 'ended' }
      return packet
    }
    phase = { name: 'authenticated', method }
    // [MQTT-4.12.0-5] a successful CONNACK repeats the method; the final data (server-final) rides along
    const properties = { ...(packet.properties as object | undefined), authenticationMethod: method, ...(finalData ? { authenticationData: finalData } : {}) }
    return { ...packet, properties }
  }

  /**
   * [MQTT-4.13.1-1] a protocol error closes the connection: before CONNACK with CONNACK 0x82, after
   * it with DISCONNECT 0x82 (§4.13.1).
   */
  function protocolError(reason: string): void {
    const before = c.connackSent !== true && phase.name !== 'authenticated' && phase.name !== 'reauthenticating'
    // aedes is answering the CONNECT itself: a CONNACK from here could cross its own, so just close
    const aedesAnswering = before && (phase.name === 'concluding' || phase.name === 'plain')
    if (phase.name === 'reauthenticating') clearTimeout(phase.timer)
    phase = { name: 'ended' }
    report(new Error(`Protocol error: ${reason}`))
    if (aedesAnswering) {
      c.conn.destroy()
      return
    }
    sendAndClose(
      before
        ? { cmd: 'connack', reasonCode: PROTOCOL_ERROR, sessionPresent: false, properties: { reasonString: reason } }
        : { cmd: 'disconnect', reasonCode: PROTOCOL_ERROR, properties: { reasonString: reason } },
    )
  }

  /** The client closed (or said DISCONNECT) during the exchange. */
  function end(): void {
    phase = { name: 'ended' }
    c.conn.destroy()
  }

  // AUTH packets go straight to the socket: before CONNACK aedes's write() refuses to send anything.
  // Writes while aedes has the stream corked queue behind its own, in order.
  function send(packet: mqttPacket.Packet): void {
    if (!gone()) c.conn.write(mqttPacket.generate(packet, { protocolVersion: 5 }))
  }

  function sendAndClose(packet: mqttPacket.Packet): void {
    if (gone()) return
    const close = (): void => {
      c.conn.destroy()
    }
    // destroy only once the bytes are out; a peer that stops reading still gets closed
    c.conn.write(mqttPacket.generate(packet, { protocolVersion: 5 }), close)
    setTimeout(close, 1000).unref()
  }
}
