import type { PublishPacket } from 'aedes'

/**
 * [MQTT-3.1.3-9] Will Delay Interval is a property of the will, not of the message: aedes
 * publishes the stored will packet as it is, so the property would reach subscribers. Every will
 * goes through `authorizePublish` (live, delayed, and another broker's stale ones), so it is
 * removed there. A client PUBLISH cannot carry it, so the check costs one property read.
 */
export function dropWillDelayInterval(packet: PublishPacket): void {
  const properties = packet.properties as { willDelayInterval?: number } | undefined
  if (properties?.willDelayInterval !== undefined) {
    const { willDelayInterval: _, ...rest } = properties
    packet.properties = rest as PublishPacket['properties']
  }
}
