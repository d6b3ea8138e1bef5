import type { Client } from 'aedes'
import { clientInternals, writeDirect } from './aedes-internals.js'

/** aedes error messages that end a v5 connection, and the DISCONNECT reason code each deserves. */
const REASONS: Array<[RegExp, number]> = [
  [/keep ?alive timeout/i, 0x8d], // Keep Alive timeout
  [/is not allowed in PUBLISH|empty topic/i, 0x90], // Topic Name invalid
  [/Response Topic/i, 0x82], // Protocol Error [MQTT-3.3.2-14]
  [/too many levels/i, 0x90],
  [/Invalid|protocol/i, 0x82],
]

/**
 * aedes closes a connection on a protocol violation without telling an MQTT 5 client why. Before
 * it does (this listener runs first), send DISCONNECT with the reason code §3.14.2.1 defines;
 * malformed packets get 0x81. Best effort: the socket is destroyed right after.
 */
export function explainDisconnects(client: Client): void {
  client.prependListener('error', explain)
}

/** One listener function for every client (EventEmitter calls it on the client). */
function explain(this: Client, err: Error): void {
  if (clientInternals(this).version !== 5) return
  const reasonCode = reasonFor(err)
  if (reasonCode === undefined) return
  try {
    writeDirect(this, { cmd: 'disconnect', reasonCode })
  } catch {
    // the connection is going away either way
  }
}

function reasonFor(err: Error): number | undefined {
  if ((err as { code?: string }).code === 'ECONNRESET' || /write after end|EPIPE/.test(err.message)) return undefined
  for (const [pattern, code] of REASONS) if (pattern.test(err.message)) return code
  // parser errors from mqtt-packet
  return /packet|length|header|utf8|malformed/i.test(err.message) ? 0x81 : undefined
}
