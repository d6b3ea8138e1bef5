import { deserialize, serialize } from 'node:v8'

// Packets go to disk through v8's structured serializer: unlike JSON or msgpack it keeps Buffer
// payloads as Buffers and `undefined` fields as undefined (mqtt-packet rejects `topicAlias: null`).

/** Any aedes packet, retained message, will or subscription object. */
export type StoredObject = Record<string, unknown>

/**
 * A plain copy of an object's own enumerable fields without function values: aedes hands the
 * store QoSPacket instances that carry a `writeCallback`, which the serializer cannot clone.
 */
export function toStorable(value: object): StoredObject {
  const copy: StoredObject = {}
  for (const [key, field] of Object.entries(value)) {
    if (typeof field !== 'function') copy[key] = field
  }
  return copy
}

export function encodePacket(value: object): Buffer {
  return encodeQueuedPublish(value) ?? serialize(toStorable(value))
}

export function decodePacket(blob: Buffer): StoredObject {
  return blob[0] === QUEUED_PUBLISH ? decodeQueuedPublish(blob) : (deserialize(blob) as StoredObject)
}

// The packet every offline enqueue stores (an aedes-packet Packet without MQTT 5 properties) has
// a compact form of its own, several times cheaper to write than the structured clone: a tag
// byte (v8's format always starts with 0xFF), flags, the broker counter (and messageExpiry) as
// doubles, brokerId and topic with 32-bit lengths, the payload to the end. Decoding gives back
// the same fields in the same order. Anything else uses the v8 form.
const QUEUED_PUBLISH = 0x01
const RETAIN = 0x04
const DUP = 0x08
const EXPIRY = 0x10
const MESSAGE_ID = 0x20
const PUBLISH_KEYS = ['cmd', 'brokerId', 'brokerCounter', 'topic', 'payload', 'qos', 'retain', 'dup']

function encodeQueuedPublish(value: object): Buffer | undefined {
  const keys = Object.keys(value)
  const p = value as Record<string, unknown>
  const expiry = keys[0] === 'messageExpiry'
  const first = expiry ? 1 : 0
  const withMessageId = keys.length === first + PUBLISH_KEYS.length + 1
  if (!withMessageId && keys.length !== first + PUBLISH_KEYS.length) return undefined
  for (let i = 0; i < PUBLISH_KEYS.length; i++) if (keys[first + i] !== PUBLISH_KEYS[i]) return undefined
  if (withMessageId && (keys[keys.length - 1] !== 'messageId' || p.messageId !== undefined)) return undefined
  const { cmd, brokerId, brokerCounter, topic, payload, qos, retain, dup, messageExpiry } = p
  if (cmd !== 'publish' || typeof brokerId !== 'string' || typeof brokerCounter !== 'number' || typeof topic !== 'string') return undefined
  if (!Buffer.isBuffer(payload) || (qos !== 0 && qos !== 1 && qos !== 2) || typeof retain !== 'boolean' || typeof dup !== 'boolean') return undefined
  if (expiry && typeof messageExpiry !== 'number') return undefined
  const idBytes = Buffer.byteLength(brokerId)
  const topicBytes = Buffer.byteLength(topic)
  const head = 2 + 8 + (expiry ? 8 : 0)
  const blob = Buffer.allocUnsafe(head + 4 + idBytes + 4 + topicBytes + payload.length)
  blob[0] = QUEUED_PUBLISH
  blob[1] = qos | (retain ? RETAIN : 0) | (dup ? DUP : 0) | (expiry ? EXPIRY : 0) | (withMessageId ? MESSAGE_ID : 0)
  blob.writeDoubleLE(brokerCounter, 2)
  if (expiry) blob.writeDoubleLE(messageExpiry as number, 10)
  let at = blob.writeUInt32LE(idBytes, head)
  at += blob.write(brokerId, at)
  at = blob.writeUInt32LE(topicBytes, at)
  at += blob.write(topic, at)
  payload.copy(blob, at)
  return blob
}

function decodeQueuedPublish(blob: Buffer): StoredObject {
  const flags = blob[1] as number
  const packet: StoredObject = {}
  let at = 10
  if (flags & EXPIRY) {
    packet.messageExpiry = blob.readDoubleLE(10)
    at = 18
  }
  const idEnd = at + 4 + blob.readUInt32LE(at)
  const brokerId = blob.toString('utf8', at + 4, idEnd)
  const topicEnd = idEnd + 4 + blob.readUInt32LE(idEnd)
  packet.cmd = 'publish'
  packet.brokerId = brokerId
  packet.brokerCounter = blob.readDoubleLE(2)
  packet.topic = blob.toString('utf8', idEnd + 4, topicEnd)
  packet.payload = Buffer.from(blob.subarray(topicEnd))
  packet.qos = flags & 0x03
  packet.retain = (flags & RETAIN) !== 0
  packet.dup = (flags & DUP) !== 0
  if (flags & MESSAGE_ID) packet.messageId = undefined
  return packet
}

/** Payload size counted against the per-session byte limit. */
export function payloadBytes(packet: { payload?: unknown }): number {
  const { payload } = packet
  if (typeof payload === 'string') return Buffer.byteLength(payload)
  if (payload instanceof Uint8Array) return payload.byteLength
  return 0
}
