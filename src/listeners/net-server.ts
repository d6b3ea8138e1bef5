import type { Server as NetServer, Socket } from 'node:net'
import { ListenerError } from '../errors.js'
import type { BoundAddress } from './listener.js'

/** Binds a server (TCP, TLS or HTTP) and resolves with the address it really got (port 0 picks one). */
export function bindServer(server: NetServer, host: string, port: number, what: string): Promise<BoundAddress> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new ListenerError(`${what}: cannot listen on ${host}:${port}: ${err.message}`, { cause: err }))
    }
    server.once('error', onError)
    server.listen({ host, port }, () => {
      server.off('error', onError)
      const address = server.address()
      if (address === null || typeof address === 'string') {
        reject(new ListenerError(`${what}: no TCP address after listen`))
        return
      }
      resolve({ host: address.address, port: address.port })
    })
  })
}

/**
 * Tracks the raw sockets of a server so `close()` can end the ones that outlive the broker's own
 * disconnects (e.g. a socket still in the TLS handshake or never upgraded to WebSocket).
 */
export function trackSockets(server: NetServer, event: 'connection' | 'secureConnection' = 'connection'): Set<Socket> {
  const sockets = new Set<Socket>()
  // one listener function for every socket of the server ('close' comes once per socket)
  function forget(this: Socket): void {
    sockets.delete(this)
  }
  server.on(event, (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', forget)
  })
  return sockets
}

/** Stops accepting, destroys whatever is left, and resolves when the server is fully closed. */
export function closeServer(server: NetServer, sockets: Set<Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    for (const socket of sockets) socket.destroy()
    sockets.clear()
  })
}

export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
