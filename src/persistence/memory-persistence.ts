import { createRequire } from 'node:module'
import type { Client } from 'aedes'

// The in-memory store of aedes-persistence (the async implementation the beta calls), kept for
// tests and benchmarks. It is extended only where mqlite needs it: clearing a client's incoming
// QoS 2 state, which the beta never does for clean sessions.
const require = createRequire(import.meta.url)
const AsyncMemoryPersistence = require('aedes-persistence/asyncPersistence.js') as new () => MemoryStoreBase

interface MemoryStoreBase {
  setup(broker: unknown): Promise<void>
  incomingStorePacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void>
  incomingDelPacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void>
  destroy(): Promise<void>
}

export class MemoryPersistence extends AsyncMemoryPersistence {
  /** message ids of stored incoming QoS 2 packets, per client: the base class keeps them private */
  readonly #incomingIds = new Map<string, Set<number>>()

  override async incomingStorePacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void> {
    await super.incomingStorePacket(client, packet)
    if (packet.messageId === undefined) return
    let ids = this.#incomingIds.get(client.id)
    if (!ids) this.#incomingIds.set(client.id, (ids = new Set()))
    ids.add(packet.messageId)
  }

  override async incomingDelPacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void> {
    await super.incomingDelPacket(client, packet)
    if (packet.messageId !== undefined) this.#incomingIds.get(client.id)?.delete(packet.messageId)
  }

  /** Forgets every incoming QoS 2 packet of a client whose session ended. */
  async cleanIncoming(client: Pick<Client, 'id'>): Promise<void> {
    const ids = this.#incomingIds.get(client.id)
    if (!ids) return
    this.#incomingIds.delete(client.id)
    for (const messageId of ids) await super.incomingDelPacket(client, { messageId }).catch(() => {})
  }
}
