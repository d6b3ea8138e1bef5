import type { Aedes } from 'aedes'
import { brokerInternals, clientInternals } from '../broker/aedes-internals.js'
import type { PartialStoreStats } from './store-stats.js'

/** Everything a scrape needs to know about the broker beyond its counters, taken once per scrape. */
export interface BrokerSnapshot {
  /** connected clients by protocol label */
  clientsByProtocol: Record<ProtocolLabel, number>
  /** connected clients, all protocols */
  connected: number
  /** subscriptions of connected clients, all of them / of those with clean sessions */
  liveSubscriptions: number
  cleanSessionSubscriptions: number
  store: PartialStoreStats
}

export type ProtocolLabel = '3.1' | '3.1.1' | '5'
export const PROTOCOLS: readonly ProtocolLabel[] = ['3.1', '3.1.1', '5']

export const emptySnapshot = (): BrokerSnapshot => ({
  clientsByProtocol: { '3.1': 0, '3.1.1': 0, '5': 0 },
  connected: 0,
  liveSubscriptions: 0,
  cleanSessionSubscriptions: 0,
  store: {},
})

/** One pass over the connected clients: O(clients) per scrape, nothing per message. */
export function snapshotClients(broker: Aedes | undefined, store: PartialStoreStats): BrokerSnapshot {
  const snapshot = emptySnapshot()
  snapshot.store = store
  if (!broker) return snapshot
  const { clients } = brokerInternals(broker)
  for (const id in clients) {
    const client = clients[id]!
    const protocol = client.version === 5 ? '5' : client.version === 3 ? '3.1' : '3.1.1'
    snapshot.clientsByProtocol[protocol]++
    snapshot.connected++
    let subscriptions = 0
    for (const _ in clientInternals(client).subscriptions) subscriptions++
    snapshot.liveSubscriptions += subscriptions
    if (client.clean) snapshot.cleanSessionSubscriptions += subscriptions
  }
  return snapshot
}

