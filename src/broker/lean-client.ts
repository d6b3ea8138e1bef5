import type { Aedes, Client } from 'aedes'
import type { EventEmitter } from 'node:events'
import { onClientCreated } from './client-setup.js'
import { clientInternals } from './aedes-internals.js'

// aedes 2.0.0-beta.1's Client constructor gives every connection listeners made for it alone:
// `stream.finished(conn, close.bind(client))` (seven closures and their context), and bound
// functions forwarding the stream's and the parser's 'error' and the stream's 'end'. An idle
// connection keeps them for its whole life, about 0.8 KiB. The same work is done here by
// listener functions shared by every connection: they find the client from the emitter, on which
// aedes sets `client` (`conn.client`, `parser.client`).

/** An emitter aedes linked to its client: the connection stream or the parser. */
interface Linked extends EventEmitter {
  client?: Client
}

function forwardError(this: Linked, err: Error): void {
  this.client?.emit('error', err)
}

function closeClient(this: Linked): void {
  this.client?.close()
}

/**
 * Replaces aedes's listener named `name` (a bound function) by `shared`, only when it is the last
 * listener of `event`, so the listeners keep their order. Otherwise aedes's own stays.
 */
function swap(emitter: Linked, event: string, name: string, shared: (this: Linked, ...args: never[]) => void): void {
  const listeners = emitter.listeners(event)
  const own = listeners[listeners.length - 1] as ((...args: unknown[]) => void) | undefined
  if (own === undefined || own.name !== name) return
  emitter.removeListener(event, own)
  emitter.on(event, shared as (...args: unknown[]) => void)
}

/**
 * Slims every new client's listeners; register it before other client setups, so the stream's
 * 'close' listener keeps its place (before those others add). What aedes's `finished()` did:
 * close the client when the stream ends, finishes, errors or closes. 'end' and 'error' already
 * close it through aedes's own listeners (an error: `_onError`), so a 'close' listener is enough.
 * A stream already closed when the client is created keeps `finished()` (it reports that at once).
 */
export function slimClientListeners(broker: Aedes): void {
  onClientCreated(broker, (client) => {
    const c = clientInternals(client) as ReturnType<typeof clientInternals> & { _eos: () => void }
    const conn = c.conn as unknown as Linked & { destroyed: boolean; closed?: boolean }
    const parser = c._parser as Linked
    if (conn.client !== client || parser.client !== client) return
    // first: finished()'s listeners come after aedes's own on 'error' and 'end'
    const finishedReplaced = !conn.destroyed && conn.closed !== true && typeof c._eos === 'function'
    if (finishedReplaced) {
      c._eos()
      c._eos = noop
    }
    swap(conn, 'error', 'bound emit', forwardError)
    swap(parser, 'error', 'bound emit', forwardError)
    swap(conn, 'end', 'bound close', closeClient)
    if (finishedReplaced) conn.on('close', closeClient)
  })
}

function noop(): void {}
