import type { AedesPublishPacket } from 'aedes'
import mqttPacket from 'mqtt-packet'

/** Fixed header (up to 5 bytes), topic length prefix, packet id, property length (up to 4). */
const OVERHEAD_BOUND = 5 + 2 + 2 + 4

/**
 * [MQTT-3.1.2-24] Would this PUBLISH exceed the client's Maximum Packet Size? Most packets are far
 * below the limit: a cheap bound decides those, and only packets near the limit are encoded.
 */
export function exceedsPacketSize(packet: AedesPublishPacket, maximum: number, protocolVersion: number): boolean {
  const payloadBytes = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length
  const lowerBound = payloadBytes + packet.topic.length
  if (lowerBound > maximum) return true
  if (lowerBound + OVERHEAD_BOUND + 3 * packet.topic.length + 1024 < maximum && packet.properties === undefined) return false
  const wire = mqttPacket.generate({ ...packet, messageId: packet.qos > 0 ? 1 : undefined } as mqttPacket.IPublishPacket, {
    protocolVersion: protocolVersion as 3 | 4 | 5,
  })
  return wire.length > maximum
}
