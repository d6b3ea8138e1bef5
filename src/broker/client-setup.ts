import type { Aedes, Client } from 'aedes'
import { brokerInternals } from './aedes-internals.js'

/**
 * Runs `setup` on every aedes Client right after it is constructed, before it reads a byte: the
 * one place where mqlite adjusts a connection's objects (maps, delivery functions, counters).
 */
export function onClientCreated(broker: Aedes, setup: (client: Client) => void): void {
  const internals = brokerInternals(broker)
  const handle = internals.handle
  internals.handle = (conn, req) => {
    const client = handle(conn, req)
    setup(client)
    return client
  }
}
