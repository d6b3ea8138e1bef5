import type { ListenerConfig } from '../config/schema.js'
import type { ConnectionHandler, Listener } from './listener.js'
import { createTcpListener } from './tcp-listener.js'
import { createTlsListener } from './tls-listener.js'
import { createWsListener } from './ws-listener.js'

/** One factory per transport; the config's `type` picks it. */
export function createListener(config: ListenerConfig, onConnection: ConnectionHandler): Promise<Listener> {
  switch (config.type) {
    case 'tcp':
      return createTcpListener(config, onConnection)
    case 'tls':
      return createTlsListener(config, onConnection)
    case 'ws':
    case 'wss':
      return createWsListener(config, onConnection)
  }
}
