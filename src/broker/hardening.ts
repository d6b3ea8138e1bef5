import type { Aedes, Client } from 'aedes'
import { onClientCreated } from './client-setup.js'
import { brokerInternals, clientInternals, type BrokerInternals, type ClientInternals } from './aedes-internals.js'

// Defences against remote crashes and an authorization bypass of the aedes 2.0.0-beta.1
// pre-release (fixed upstream in 1.2.0, not in the beta). Each is applied from outside aedes and
// has a regression test over a real socket in test/integration/hardening.test.ts.

/** The store methods this module wraps; every mqlite store has them. */
export interface HardenedStore {
  addSubscriptions(client: Client, subs: Array<{ topic: string }>): Promise<void>
  cleanSubscriptions(client: Client): Promise<void>
  incomingDelPacket(client: Client, packet: unknown): Promise<void>
  cleanIncoming?(client: Pick<Client, 'id'>): Promise<void>
}

/**
 * Client ids `constructor`, `__proto__`, `toString` and topic filters named like Object.prototype
 * members collide with inherited properties of the plain objects aedes uses as maps. Replace those
 * maps with prototype-free ones: on the broker once, on every client as it is created.
 */
export function usePrototypeFreeMaps(broker: Aedes): void {
  const internals = brokerInternals(broker)
  internals.clients = Object.assign(Object.create(null) as BrokerInternals['clients'], internals.clients)
  internals.brokers = Object.assign(Object.create(null) as BrokerInternals['brokers'], internals.brokers)
  onClientCreated(broker, (client) => {
    const c = clientInternals(client)
    c.subscriptions = Object.create(NO_MEMBERS) as ClientInternals['subscriptions']
    c.duplicates = Object.create(NO_MEMBERS) as ClientInternals['duplicates']
  })
}

/**
 * The prototype of each client's maps: it has no members and neither has its own prototype, so no
 * key finds an inherited one. An object made from it stays a fast (not dictionary-mode) object,
 * which `Object.create(null)` would not: two of those cost every connection a few hundred bytes.
 */
const NO_MEMBERS: object = Object.freeze(Object.create(null) as object)

/**
 * Wraps the few store methods whose aedes call sites are unsafe:
 * - addSubscriptions: aedes persists the whole SUBSCRIBE list as soon as any entry is granted
 *   (entries are authorized in parallel), denied ones included, and would then queue offline
 *   messages for them; the authorization is checked again here so a denied entry is never stored;
 * - incomingDelPacket: two PUBRELs for one id in one segment make aedes delete twice and leave the
 *   second rejection unhandled, so a missing packet is not an error here;
 * - cleanSubscriptions: a session that starts clean also forgets its incoming QoS 2 packets, or a
 *   reused packet id would be taken for a duplicate and the message dropped.
 */
export function hardenStore<S extends HardenedStore>(
  store: S,
  canSubscribe: (client: Client, filter: string) => boolean,
  onError: (err: unknown) => void,
): S {
  const addSubscriptions = store.addSubscriptions.bind(store)
  const incomingDelPacket = store.incomingDelPacket.bind(store)
  const cleanSubscriptions = store.cleanSubscriptions.bind(store)
  store.addSubscriptions = async (client, subs) => {
    const allowed = subs.filter((sub) => canSubscribe(client, sub.topic))
    if (allowed.length > 0) await addSubscriptions(client, allowed)
  }
  store.incomingDelPacket = async (client, packet) => {
    await incomingDelPacket(client, packet).catch((err: unknown) => {
      if (!isMissingPacket(err)) onError(err)
    })
  }
  store.cleanSubscriptions = async (client) => {
    await cleanSubscriptions(client)
    await store.cleanIncoming?.(client)
  }
  return store
}

function isMissingPacket(err: unknown): boolean {
  return err instanceof Error && /no such packet/i.test(err.message)
}
