import mqttPacket from 'mqtt-packet'

/** The fields of an outgoing PUBACK, PUBREC, PUBREL or PUBCOMP that its encoding depends on. */
export interface OutgoingAck {
  cmd: string
  messageId?: unknown
  reasonCode?: number
  properties?: object
}

/** packet type codes (MQTT 2.1.2) */
const ACK_TYPES: Readonly<Record<string, number>> = { puback: 4, pubrec: 5, pubrel: 6, pubcomp: 7 }

/**
 * The wire bytes of a publish acknowledgement without MQTT 5 properties in one buffer, byte for
 * byte what mqtt-packet writes; undefined for anything else, which mqtt-packet then writes (and
 * validates) itself. mqtt-packet writes an acknowledgement as three stream writes (header,
 * length, packet id), and the packet id from a cache of 65,536 two-byte Buffers that it builds on
 * its first write (see `useUncachedNumbers`).
 */
export function encodeAck(packet: OutgoingAck, protocolVersion: number): Buffer | undefined {
  const type = ACK_TYPES[packet.cmd]
  if (type === undefined) return undefined
  const id = packet.messageId
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xffff) return undefined
  // PUBREL's fixed header has flags 0010 [MQTT-3.6.1-1], resent or not (mqtt-packet throws on a
  // PUBREL marked DUP: it looks up a header that does not exist)
  const header = (type << 4) | (type === 6 ? 0x02 : 0)
  const reasonCode = packet.reasonCode
  if (protocolVersion === 5) {
    if (packet.properties !== undefined) return undefined
    // the reason code may be left out when it is 0 (MQTT 5, 3.4.2.1); any other is followed by a
    // property length of 0 (mqtt-packet writes 0 for an undefined one)
    if (reasonCode !== 0) {
      if (reasonCode !== undefined && (!Number.isInteger(reasonCode) || reasonCode < 0 || reasonCode > 0xff)) return undefined
      const bytes = Buffer.allocUnsafe(6)
      bytes[0] = header
      bytes[1] = 4
      bytes[2] = id >> 8
      bytes[3] = id & 0xff
      bytes[4] = reasonCode ?? 0
      bytes[5] = 0
      return bytes
    }
  }
  const bytes = Buffer.allocUnsafe(4)
  bytes[0] = header
  bytes[1] = 2
  bytes[2] = id >> 8
  bytes[3] = id & 0xff
  return bytes
}

/**
 * Turns off mqtt-packet's cache of packet ids (its documented `cacheNumbers` switch): on its first
 * write it builds a Buffer for each of the 65,536 numbers, 6.5 MB of heap that a broker keeps for
 * good. With acknowledgements encoded here, only the rarer packets mqtt-packet still writes (SUBACK,
 * UNSUBACK, anything with MQTT 5 properties) allocate their two bytes instead. Process-wide, and
 * before any write.
 */
export function useUncachedNumbers(): void {
  mqttPacket.writeToStream.cacheNumbers = false
}
