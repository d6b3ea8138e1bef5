/** The fields of an outgoing PUBLISH that its encoding depends on. */
export interface OutgoingPublish {
  cmd: string
  topic?: unknown
  payload?: unknown
  qos?: number
  dup?: boolean
  retain?: boolean
  messageId?: number
  properties?: object
}

/** Payloads up to this size are copied into the packet's one buffer; larger ones are not worth it. */
export const ENCODE_PAYLOAD_MAX = 4096

/**
 * The wire bytes of a plain PUBLISH (string topic, Buffer payload, no MQTT 5 properties) in one
 * buffer, byte for byte what mqtt-packet writes; undefined for anything else, which mqtt-packet
 * then writes (and validates) itself. mqtt-packet writes a PUBLISH as five separate chunks, each
 * a buffered stream write and a writev entry: a quarter of the broker's time under load.
 */
export function encodePublish(packet: OutgoingPublish, protocolVersion: number): Buffer | undefined {
  if (packet.cmd !== 'publish') return undefined
  const { topic, payload, messageId } = packet
  const qos = packet.qos ?? 0
  if (typeof topic !== 'string' || !Buffer.isBuffer(payload) || payload.length > ENCODE_PAYLOAD_MAX) return undefined
  if (qos !== 0 && qos !== 1 && qos !== 2) return undefined
  if (qos > 0 && (typeof messageId !== 'number' || !Number.isInteger(messageId) || messageId < 0 || messageId > 0xffff)) return undefined
  const v5 = protocolVersion === 5
  if (v5 && packet.properties !== undefined && !isEmpty(packet.properties)) return undefined
  const topicBytes = Buffer.byteLength(topic)
  if (topicBytes > 0xffff) return undefined
  const remaining = 2 + topicBytes + (qos > 0 ? 2 : 0) + (v5 ? 1 : 0) + payload.length
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : 3
  const bytes = Buffer.allocUnsafe(1 + lengthBytes + remaining)
  bytes[0] = 0x30 | (packet.dup ? 0x08 : 0) | (qos << 1) | (packet.retain ? 0x01 : 0)
  let at = 1
  for (let rest = remaining; ; ) {
    const digit = rest % 128
    rest = Math.floor(rest / 128)
    bytes[at++] = rest > 0 ? digit | 0x80 : digit
    if (rest === 0) break
  }
  bytes.writeUInt16BE(topicBytes, at)
  at += 2
  at += bytes.write(topic, at, 'utf8')
  if (qos > 0) at = bytes.writeUInt16BE(messageId as number, at)
  if (v5) bytes[at++] = 0 // property length
  payload.copy(bytes, at)
  return bytes
}

/**
 * encodePublish that hands back the previous buffer for a QoS 0 copy of the same message (same
 * topic and payload objects, flags and version): a fan-out then encodes once for every
 * subscriber. Buffers written to sockets are never changed afterwards, so sharing one is safe.
 */
export function createPublishEncoder(): (packet: OutgoingPublish, protocolVersion: number) => Buffer | undefined {
  // the last QoS 0 encoding, field by field: an object per message would be garbage per message
  let lastTopic: unknown
  let lastPayload: unknown
  let lastFlags = -1
  let lastBytes: Buffer | undefined
  return (packet, protocolVersion) => {
    // other packets (acknowledgements between two copies) neither use nor clear the last one
    if (packet.cmd !== 'publish') return undefined
    if (packet.qos !== 0 && packet.qos !== undefined) return encodePublish(packet, protocolVersion)
    const flags = (packet.dup ? 1 : 0) | (packet.retain ? 2 : 0) | (protocolVersion === 5 ? 4 : 0)
    if (lastBytes !== undefined && lastTopic === packet.topic && lastPayload === packet.payload && lastFlags === flags) {
      // the bytes carry no properties: only a copy without any may have them
      if (protocolVersion !== 5 || packet.properties === undefined || isEmpty(packet.properties)) return lastBytes
      return undefined
    }
    const bytes = encodePublish(packet, protocolVersion)
    lastTopic = packet.topic
    lastPayload = packet.payload
    lastFlags = flags
    lastBytes = bytes
    return bytes
  }
}

function isEmpty(properties: object): boolean {
  for (const key in properties) if ((properties as Record<string, unknown>)[key] !== undefined) return false
  return true
}
