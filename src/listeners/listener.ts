import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

/** Hands an accepted MQTT byte stream to the broker. `req` is the HTTP upgrade request for WebSockets. */
export type ConnectionHandler = (stream: Duplex, req?: IncomingMessage) => void

export interface BoundAddress {
  host: string
  port: number
}

/** A bound listener. `close()` stops accepting and ends the connections it still holds. */
export interface Listener {
  readonly name: string
  readonly type: 'tcp' | 'tls' | 'ws' | 'wss'
  readonly address: BoundAddress
  /** e.g. `mqtt://127.0.0.1:1883`, `wss://0.0.0.0:8081/mqtt` */
  readonly url: string
  /** Stop accepting new connections; existing ones keep running until the broker closes them. */
  stopAccepting(): void
  close(): Promise<void>
  /** TLS listeners: re-read the certificate files for new connections (live sessions are untouched). */
  reloadCertificates?(): void
}
