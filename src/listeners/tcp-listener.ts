import { createServer } from 'node:net'
import type { ListenerConfig } from '../config/schema.js'
import type { ConnectionHandler, Listener } from './listener.js'
import { bindServer, closeServer, hostForUrl, trackSockets } from './net-server.js'

export async function createTcpListener(
  config: Extract<ListenerConfig, { type: 'tcp' }>,
  onConnection: ConnectionHandler,
): Promise<Listener> {
  const server = createServer({ noDelay: true }, (socket) => onConnection(socket))
  const sockets = trackSockets(server)
  const address = await bindServer(server, config.host, config.port, 'tcp listener')
  return {
    name: config.name ?? `tcp:${address.port}`,
    type: 'tcp',
    address,
    url: `mqtt://${hostForUrl(address.host)}:${address.port}`,
    stopAccepting: () => server.close(),
    close: () => closeServer(server, sockets),
  }
}
