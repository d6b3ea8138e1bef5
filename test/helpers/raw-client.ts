import { connect, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'

/**
 * A bare MQTT client on mqtt-packet: it sends exactly the bytes a test asks for and records every
 * packet the broker sends back, so broker mistakes that mqtt.js would smooth over stay visible.
 */
export interface RawClient {
  socket: Socket
  received: Packet[]
  send(packet: Packet): void
  /** Writes several packets in one TCP segment. */
  sendTogether(packets: Packet[]): void
  sendBytes(bytes: Buffer): void
  /** Resolves with the first received packet (old or new) matching the predicate. */
  next(predicate: (p: Packet) => boolean, timeoutMs?: number): Promise<Packet>
  closed: Promise<void>
  close(): void
}

export async function rawConnect(port: number, protocolVersion: 3 | 4 | 5 = 4): Promise<RawClient> {
  const socket = connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.on('error', () => {})
  const parser = mqttPacket.parser({ protocolVersion })
  const received: Packet[] = []
  const listeners = new Set<() => void>()
  parser.on('packet', (p: Packet) => {
    received.push(p)
    for (const l of listeners) l()
  })
  parser.on('error', () => {})
  socket.on('data', (chunk) => parser.parse(chunk))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  const encode = (p: Packet): Buffer => mqttPacket.generate(p, { protocolVersion })
  return {
    socket,
    received,
    send: (p) => socket.write(encode(p)),
    sendTogether: (ps) => socket.write(Buffer.concat(ps.map(encode))),
    sendBytes: (bytes) => socket.write(bytes),
    next(predicate, timeoutMs = 3000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hit = received.find(predicate)
          if (hit) {
            listeners.delete(onPacket)
            clearTimeout(timer)
            resolve(hit)
          }
          return hit !== undefined
        }
        const onPacket = (): void => void check()
        const timer = setTimeout(() => {
          listeners.delete(onPacket)
          reject(new Error(`no matching packet in ${timeoutMs} ms; got ${received.map((p) => p.cmd).join(',')}`))
        }, timeoutMs)
        if (!check()) listeners.add(onPacket)
      })
    },
    closed,
    close: () => socket.destroy(),
  }
}

export function connectPacket(clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}): mqttPacket.IConnectPacket {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 60, ...extra }
}
