import type { Client } from 'aedes'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

/** Where a connection came from: kept beside the stream, so nothing is added to aedes's objects. */
export interface ConnectionInfo {
  listener: string
  remoteAddress: string | undefined
}

const infoByStream = new WeakMap<object, ConnectionInfo>()

export function recordConnection(stream: Duplex, listener: string, req?: IncomingMessage): void {
  const socket = req?.socket ?? (stream as Duplex & { remoteAddress?: string })
  infoByStream.set(stream, { listener, remoteAddress: (socket as { remoteAddress?: string }).remoteAddress })
}

export function connectionInfo(client: Client): ConnectionInfo | undefined {
  return infoByStream.get(client.conn as object)
}
