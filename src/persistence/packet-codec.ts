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
// 0x20 was set by earlier releases, whose Packets had a messageId field only at QoS > 0 (and the
// four optional fields only when defined); every Packet has them all now, so it is not read.

/** The fields of an aedes-packet Packet, in the order its constructor assigns them (all of them, always). */
const PACKET_KEYS = ['clientId', 'nl', 'properties', 'messageExpiry', 'cmd', 'brokerId', 'brokerCounter', 'topic', 'payload', 'qos', 'retain', 'dup', 'messageId']

function encodeQueuedPublish(value: object): Buffer | undefined {
  const keys = Object.keys(value)
  if (keys.length !== PACKET_KEYS.length) return undefined
  for (let i = 0; i < PACKET_KEYS.length; i++) if (keys[i] !== PACKET_KEYS[i]) return undefined
  const { clientId, nl, properties, messageExpiry, cmd, brokerId, brokerCounter, topic, payload, qos, retain, dup, messageId } = value as Record<string, unknown>
  if (clientId !== undefined || nl !== undefined || properties !== undefined || messageId !== undefined) return undefined
  if (cmd !== 'publish' || typeof brokerId !== 'string' || typeof brokerCounter !== 'number' || typeof topic !== 'string') return undefined
  if (!Buffer.isBuffer(payload) || (qos !== 0 && qos !== 1 && qos !== 2) || typeof retain !== 'boolean' || typeof dup !== 'boolean') return undefined
  const expiry = messageExpiry !== undefined
  if (expiry && typeof messageExpiry !== 'number') return undefined
  const idBytes = Buffer.byteLength(brokerId)
  const topicBytes = Buffer.byteLength(topic)
  const head = 2 + 8 + (expiry ? 8 : 0)
  const blob = Buffer.allocUnsafe(head + 4 + idBytes + 4 + topicBytes + payload.length)
  blob[0] = QUEUED_PUBLISH
  blob[1] = qos | (retain ? RETAIN : 0) | (dup ? DUP : 0) | (expiry ? EXPIRY : 0)
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
  const expiry = (flags & EXPIRY) !== 0
  const at = expiry ? 18 : 10
  const idEnd = at + 4 + blob.readUInt32LE(at)
  const topicEnd = idEnd + 4 + blob.readUInt32LE(idEnd)
  // one literal, so every decoded packet has the same shape (a Packet's fields, in its order)
  return {
    clientId: undefined,
    nl: undefined,
    properties: undefined,
    messageExpiry: expiry ? blob.readDoubleLE(10) : undefined,
    cmd: 'publish',
    brokerId: blob.toString('utf8', at + 4, idEnd),
    brokerCounter: blob.readDoubleLE(2),
    topic: blob.toString('utf8', idEnd + 4, topicEnd),
    payload: Buffer.from(blob.subarray(topicEnd)),
    qos: flags & 0x03,
    retain: (flags & RETAIN) !== 0,
    dup: (flags & DUP) !== 0,
    messageId: undefined,
  }
}

/** Payload size counted against the per-session byte limit. */
export function payloadBytes(packet: { payload?: unknown }): number {
  const { payload } = packet
  if (typeof payload === 'string') return Buffer.byteLength(payload)
  if (payload instanceof Uint8Array) return payload.byteLength
  return 0
}
