import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Server as TlsServer } from 'node:tls'
import { WebSocketServer, createWebSocketStream } from 'ws'
import type { ListenerConfig } from '../config/schema.js'
import type { ConnectionHandler } from './listener.js'
import { bindServer, closeServer, hostForUrl, trackSockets } from './net-server.js'
import { readTlsFiles, tlsServerOptions } from './tls-context.js'
import type { Listener } from './listener.js'

type WsConfig = Extract<ListenerConfig, { type: 'ws' | 'wss' }>

/** MQTT over WebSocket (§6): binary frames, subprotocol `mqtt` (and the old `mqttv3.1`). */
export async function createWsListener(config: WsConfig, onConnection: ConnectionHandler): Promise<Listener> {
  const secure = config.type === 'wss'
  const what = `${config.type} listener`
  const server: Server = secure ? createHttpsServer(tlsServerOptions(config.tls, what)) : createHttpServer()
  server.on('request', (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
    res.end('MQTT over WebSocket: connect with a WebSocket client, subprotocol "mqtt"\n')
  })
  if (secure) server.on('tlsClientError', (_err: Error, socket: { destroy(): void }) => socket.destroy())
  const wss = new WebSocketServer({
    server,
    path: config.path,
    perMessageDeflate: false,
    handleProtocols: (protocols) => {
      // [MQTT-6.0.0-3] answer with the MQTT subprotocol; a client offering none gets a plain upgrade
      for (const p of ['mqtt', 'mqttv3.1']) if (protocols.has(p)) return p
      return false
    },
  })
  wss.on('connection', (socket, req: IncomingMessage) => {
    const stream = createWebSocketStream(socket)
    // Errors surface on the duplex, which the broker's client owns; this guards the gap before.
    socket.on('error', () => socket.terminate())
    onConnection(stream, req)
  })
  wss.on('error', () => {})
  const sockets = trackSockets(server, secure ? 'secureConnection' : 'connection')
  const address = await bindServer(server, config.host, config.port, what)
  return {
    name: config.name ?? `${config.type}:${address.port}`,
    type: config.type,
    address,
    url: `${config.type}://${hostForUrl(address.host)}:${address.port}${config.path}`,
    stopAccepting: () => server.close(),
    close: async () => {
      for (const client of wss.clients) client.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await closeServer(server, sockets)
    },
    ...(secure && {
      reloadCertificates: () => (server as unknown as TlsServer).setSecureContext(readTlsFiles(config.tls, what)),
    }),
  }
}
