import { createServer } from 'node:tls'
import type { ListenerConfig } from '../config/schema.js'
import type { ConnectionHandler, Listener } from './listener.js'
import { bindServer, closeServer, hostForUrl, trackSockets } from './net-server.js'
import { readTlsFiles, tlsServerOptions } from './tls-context.js'

export async function createTlsListener(
  config: Extract<ListenerConfig, { type: 'tls' }>,
  onConnection: ConnectionHandler,
): Promise<Listener> {
  const server = createServer({ ...tlsServerOptions(config.tls, 'tls listener'), noDelay: true }, (socket) =>
    onConnection(socket),
  )
  // A failed handshake is the client's problem, not the listener's: never let it become an
  // unhandled 'error'.
  server.on('tlsClientError', (_err, socket) => socket.destroy())
  const sockets = trackSockets(server)
  const address = await bindServer(server, config.host, config.port, 'tls listener')
  return {
    name: config.name ?? `tls:${address.port}`,
    type: 'tls',
    address,
    url: `mqtts://${hostForUrl(address.host)}:${address.port}`,
    stopAccepting: () => server.close(),
    close: () => closeServer(server, sockets),
    reloadCertificates: () => server.setSecureContext(readTlsFiles(config.tls, 'tls listener')),
  }
}
