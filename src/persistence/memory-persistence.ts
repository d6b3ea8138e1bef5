import { createRequire } from 'node:module'
import type { Client } from 'aedes'

// The in-memory store of aedes-persistence (the async implementation the beta calls), kept for
// tests and benchmarks. It is extended only where mqlite needs it: clearing a client's incoming
// QoS 2 state, which the beta never does for clean sessions, and returning the Subscription
// Identifier with each topic match (its trie keeps only QoS and options; the SQLite index keeps
// the whole subscription).
const require = createRequire(import.meta.url)
const AsyncMemoryPersistence = require('aedes-persistence/asyncPersistence.js') as new () => MemoryStoreBase

interface Subscribed {
  topic: string
  subscriptionIdentifier?: number
}

interface Matched {
  clientId: string
  topic: string
  subscriptionIdentifier?: number
}

interface MemoryStoreBase {
  setup(broker: unknown): Promise<void>
  addSubscriptions(client: Pick<Client, 'id'>, subs: Subscribed[]): Promise<void>
  removeSubscriptions(client: Pick<Client, 'id'>, topics: string[]): Promise<void>
  cleanSubscriptions(client: Pick<Client, 'id'>): Promise<void>
  subscriptionsByTopic(topic: string): Promise<Matched[]>
  incomingStorePacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void>
  incomingDelPacket(client: Pick<Client, 'id'>, packet: { messageId?: number }): Promise<void>
  destroy(): Promise<void>
}

export class MemoryPersistence extends AsyncMemoryPersistence {
  /** message ids of stored incoming QoS 2 packets, per client: the base class keeps them private */
  readonly #incomingIds = new Map<string, Set<number>>()
  /** client id -> topic filter -> Subscription Identifier */
  readonly #identifiers = new Map<string, Map<string, number>>()

  override async addSubscriptions(client: Pick<Client, 'id'>, subs: Subscribed[]): Promise<void> {
    await super.addSubscriptions(client, subs)
    let byFilter = this.#identifiers.get(client.id)
    for (const sub of subs) {
      if (sub.subscriptionIdentifier === undefined) {
        byFilter?.delete(sub.topic)
        continue
      }
      if (!byFilter) this.#identifiers.set(client.id, (byFilter = new Map()))
      byFilter.set(sub.topic, sub.subscriptionIdentifier)
    }
  }

  override async removeSubscriptions(client: Pick<Client, 'id'>, topics: string[]): Promise<void> {
    await super.removeSubscriptions(client, topics)
    const byFilter = this.#identifiers.get(client.id)
    for (const topic of topics) byFilter?.delete(topic)
  }

  override async cleanSubscriptions(client: Pick<Client, 'id'>): Promise<void> {
    await super.cleanSubscriptions(client)
    this.#identifiers.delete(client.id)
  }

  /** The trie's matches (fresh objects), each with its Subscription Identifier if it has one. */
  override async subscriptionsByTopic(topic: string): Promise<Matched[]> {
    const matches = await super.subscriptionsByTopic(topic)
    if (this.#identifiers.size === 0) return matches
    for (const match of matches) {
      const id = this.#identifiers.get(match.clientId)?.get(match.topic)
      if (id !== undefined) match.subscriptionIdentifier = id
    }
    return matches
  }

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
