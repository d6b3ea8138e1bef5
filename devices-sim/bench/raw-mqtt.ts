// A minimal MQTT 3.1.1 client over a raw socket, for the bench's throughput scenarios only:
// packets are encoded once (mqtt-packet) and then copied with a patched packet id, incoming
// frames are split by their length header and counted, not decoded. mqtt.js costs several
// microseconds per message, which on one load core caps at well below what brokers deliver.
import { connect as tcpConnect } from 'node:net'
import type { Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'
import type { QoS } from './load.js'

const PUBLISH = 3
const PUBACK = 4
const PUBREC = 5
const PUBREL = 6
const PUBCOMP = 7
const CONNACK = 2
const SUBACK = 9

export interface RawClient {
  /** Incoming PUBLISH packets so far. */
  readonly received: number
  /** performance.now() of the last incoming PUBLISH. */
  readonly lastReceivedAt: number
  subscribe(filter: string, qos: QoS): Promise<void>
  /** Publishes `count` copies keeping at most `window` unacknowledged (QoS 0: unflushed). */
  flood(topic: string, payload: Buffer, qos: QoS, count: number, window: number): Promise<void>
  close(): Promise<void>
}

function ack(type: number, flags: number, id: number): Buffer {
  return Buffer.from([(type << 4) | flags, 2, id >> 8, id & 0xff])
}

export async function connectRaw(port: number, clientId: string, options: { clean?: boolean; host?: string } = {}): Promise<RawClient> {
  const socket: Socket = tcpConnect({ port, host: options.host ?? '127.0.0.1', noDelay: true })
  let leftover: Buffer | undefined
  let received = 0
  let lastReceivedAt = 0
  let onConnack: ((ok: boolean) => void) | undefined
  let onSuback: (() => void) | undefined
  let onAcked: ((n: number) => void) | undefined

  socket.on('data', (chunk: Buffer) => {
    const buf = leftover ? Buffer.concat([leftover, chunk]) : chunk
    leftover = undefined
    let offset = 0
    const replies: Buffer[] = []
    let acked = 0
    while (offset < buf.length) {
      // Fixed header: type/flags byte, then a 1-4 byte variable-length "remaining length".
      let length = 0
      let multiplier = 1
      let pos = offset + 1
      let complete = false
      while (pos < buf.length && pos <= offset + 4) {
        const byte = buf[pos++] as number
        length += (byte & 0x7f) * multiplier
        multiplier *= 128
        if ((byte & 0x80) === 0) {
          complete = true
          break
        }
      }
      if (!complete || pos + length > buf.length) break
      const header = buf[offset] as number
      const type = header >> 4
      if (type === PUBLISH) {
        received++
        const qos = (header >> 1) & 3
        if (qos > 0) {
          const topicLength = buf.readUInt16BE(pos)
          const id = buf.readUInt16BE(pos + 2 + topicLength)
          replies.push(ack(qos === 1 ? PUBACK : PUBREC, 0, id))
        }
      } else if (type === PUBACK || type === PUBCOMP) {
        acked++
      } else if (type === PUBREC) {
        replies.push(ack(PUBREL, 2, buf.readUInt16BE(pos)))
      } else if (type === PUBREL) {
        replies.push(ack(PUBCOMP, 0, buf.readUInt16BE(pos)))
      } else if (type === CONNACK) {
        onConnack?.(buf[pos + 1] === 0)
      } else if (type === SUBACK) {
        onSuback?.()
      }
      offset = pos + length
    }
    if (offset < buf.length) leftover = buf.subarray(offset)
    if (received > 0) lastReceivedAt = performance.now()
    if (replies.length > 0) socket.write(replies.length === 1 ? (replies[0] as Buffer) : Buffer.concat(replies))
    if (acked > 0) onAcked?.(acked)
  })

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.once('connect', () => {
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: options.clean ?? true, clientId, keepalive: 0 }))
    })
    onConnack = (ok) => (ok ? resolve() : reject(new Error(`CONNACK refused for ${clientId}`)))
  })
  socket.on('error', () => undefined)

  return {
    get received() {
      return received
    },
    get lastReceivedAt() {
      return lastReceivedAt
    },
    subscribe(filter, qos) {
      return new Promise((resolve) => {
        onSuback = resolve
        socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] }))
      })
    },
    flood(topic, payload, qos, count, window) {
      return new Promise((resolve) => {
        if (count === 0) return resolve()
        if (qos === 0) {
          // Identical packets: write them in batches and let socket backpressure pace us.
          const one = mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false })
          const perBatch = Math.max(1, Math.min(count, Math.floor(64 * 1024 / one.length)))
          const batch = Buffer.concat(Array.from({ length: perBatch }, () => one))
          let sent = 0
          const pump = (): void => {
            while (sent < count) {
              const n = Math.min(perBatch, count - sent)
              sent += n
              const ok = socket.write(n === perBatch ? batch : batch.subarray(0, n * one.length))
              if (!ok) return void socket.once('drain', pump)
            }
            socket.write(Buffer.alloc(0), () => resolve())
          }
          pump()
          return
        }
        const template = mqttPacket.generate({ cmd: 'publish', topic, payload, qos, messageId: 1, dup: false, retain: false })
        // The packet id sits right after the topic: fixed header, 2-byte topic length, topic.
        const headerLength = template.length - (2 + Buffer.byteLength(topic) + 2 + payload.length)
        const idOffset = headerLength + 2 + Buffer.byteLength(topic)
        let sent = 0
        let acked = 0
        let nextId = 1
        const pump = (): void => {
          const chunks: Buffer[] = []
          while (sent < count && sent - acked < window) {
            const packet = Buffer.from(template)
            packet.writeUInt16BE(nextId, idOffset)
            nextId = nextId === 65535 ? 1 : nextId + 1
            chunks.push(packet)
            sent++
          }
          if (chunks.length > 0) socket.write(Buffer.concat(chunks))
        }
        onAcked = (n) => {
          acked += n
          if (acked >= count) resolve()
          else if (sent - acked <= window / 2) pump()
        }
        pump()
      })
    },
    close() {
      return new Promise((resolve) => {
        if (socket.destroyed) return resolve()
        socket.end(Buffer.from([0xe0, 0]), () => {
          socket.destroy()
          resolve()
        })
        setTimeout(() => {
          socket.destroy()
          resolve()
        }, 1000).unref()
      })
    },
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until the raw clients received `expected` in total, or nothing arrived for `idleMs`. */
export async function awaitReceived(clients: readonly RawClient[], expected: number, idleMs: number): Promise<{ received: number; lastAt: number }> {
  let last = -1
  let lastChange = performance.now()
  for (;;) {
    const received = clients.reduce((s, c) => s + c.received, 0)
    if (received >= expected) break
    if (received !== last) {
      last = received
      lastChange = performance.now()
    } else if (performance.now() - lastChange > idleMs) break
    await sleep(20)
  }
  return { received: clients.reduce((s, c) => s + c.received, 0), lastAt: Math.max(...clients.map((c) => c.lastReceivedAt)) }
}
