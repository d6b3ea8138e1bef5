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
  return serialize(toStorable(value))
}

export function decodePacket(blob: Buffer): StoredObject {
  return deserialize(blob) as StoredObject
}

/** Payload size counted against the per-session byte limit. */
export function payloadBytes(packet: { payload?: unknown }): number {
  const { payload } = packet
  if (typeof payload === 'string') return Buffer.byteLength(payload)
  if (payload instanceof Uint8Array) return payload.byteLength
  return 0
}
