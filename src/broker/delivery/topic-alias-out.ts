import type { Client } from 'aedes'
import { transformOutbound } from '../packet-taps.js'

interface OutgoingPublish {
  cmd: string
  topic?: string
  properties?: Record<string, unknown>
}

/**
 * [MQTT-3.3.2-...] Outbound Topic Aliases (MQTT 5): up to the Topic Alias Maximum the client
 * announced in CONNECT, the broker gives each topic an alias the first time it sends it and then
 * sends the alias with an empty topic name. Aliases are assigned first come, first served and
 * live as long as the connection. Applied on the way to the wire only (a copy of the packet), so
 * queued and stored packets keep their topic names.
 */
export function installOutboundTopicAliases(client: Client, topicAliasMaximum: number): void {
  if (topicAliasMaximum <= 0) return
  const aliases = new Map<string, number>()
  transformOutbound(client, (wire) => {
    const packet = wire as unknown as OutgoingPublish
    if (packet.cmd !== 'publish' || !packet.topic) return wire
    const known = aliases.get(packet.topic)
    if (known !== undefined) return { ...packet, topic: '', properties: { ...packet.properties, topicAlias: known } }
    if (aliases.size >= topicAliasMaximum) return wire
    const alias = aliases.size + 1
    aliases.set(packet.topic, alias)
    return { ...packet, properties: { ...packet.properties, topicAlias: alias } }
  })
}
