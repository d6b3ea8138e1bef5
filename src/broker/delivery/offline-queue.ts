import type { AedesPublishPacket } from 'aedes'
import type { StoredListener } from '../../persistence/group-commit.js'

/** A persistent subscription as the store's topic index returns it. */
export interface StoredSubscription {
  clientId: string
  topic: string
  qos: number
  subscriptionIdentifier?: number
}

/** The store method this module wraps; its topic index must return subscription identifiers. */
export interface QueueingStore {
  outgoingEnqueueCombi(subs: StoredSubscription[], packet: AedesPublishPacket): Promise<void>
  /**
   * The same, telling a listener instead (the SQLite store; the patched aedes prefers it). The
   * listener may be told before the call returns (nothing to queue).
   */
  outgoingEnqueueCombiNotify?(subs: StoredSubscription[], packet: AedesPublishPacket, listener: StoredListener): void
}

/**
 * aedes enqueues a message for offline sessions once per matching subscription, at the publish
 * QoS, without Subscription Identifiers. So a session with overlapping subscriptions gets
 * duplicates, a QoS 2 message reaches a QoS 1 wildcard subscriber at QoS 2, and identifiers are
 * lost. This wrapper enqueues one copy per session, at min(publish QoS, highest matching grant)
 * [MQTT-3.3.4-2, MQTT-3.8.4-8], carrying every matching identifier [MQTT-3.3.4-3] (both stores'
 * topic indexes return them).
 */
export function planOfflineQueue<S extends QueueingStore>(store: S): S {
  const enqueue = store.outgoingEnqueueCombi.bind(store)
  // Not an async function: one returning the store's promise would wrap it in a second promise
  // and resolve that one two microtasks later, for every message queued.
  store.outgoingEnqueueCombi = (subs, packet) => {
    if (subs.length === 0) return NOTHING_QUEUED
    // Common case first: one subscription per session, granted at least the publish QoS, no
    // identifier: the packet goes as it is, in one call.
    if (isPlain(subs, packet)) return enqueue(subs, packet)
    return enqueueVariants(enqueue, subs, packet)
  }
  const notify = store.outgoingEnqueueCombiNotify?.bind(store)
  if (notify !== undefined) {
    store.outgoingEnqueueCombiNotify = (subs, packet, listener) => {
      if (subs.length === 0) return listener.stored(null)
      if (isPlain(subs, packet)) return notify(subs, packet, listener)
      enqueueVariants(enqueue, subs, packet).then(
        () => listener.stored(null),
        (err: Error) => listener.stored(err),
      )
    }
  }
  return store
}

const NOTHING_QUEUED: Promise<void> = Promise.resolve()

/** One copy per session, each at its own QoS and with its own identifiers. */
async function enqueueVariants(
  enqueue: QueueingStore['outgoingEnqueueCombi'],
  subs: StoredSubscription[],
  packet: AedesPublishPacket,
): Promise<void> {
  const perSession = new Map<string, { sub: StoredSubscription; qos: number; ids: number[] }>()
  for (const sub of subs) {
    const id = sub.subscriptionIdentifier
    const entry = perSession.get(sub.clientId)
    if (entry) {
      entry.qos = Math.max(entry.qos, sub.qos)
      if (id !== undefined) entry.ids.push(id)
    } else {
      perSession.set(sub.clientId, { sub, qos: sub.qos, ids: id === undefined ? [] : [id] })
    }
  }
  const unchanged: StoredSubscription[] = []
  const variants: Array<Promise<void>> = []
  for (const { sub, qos, ids } of perSession.values()) {
    const effectiveQoS = Math.min(packet.qos, qos) as 0 | 1 | 2
    if (effectiveQoS === packet.qos && ids.length === 0) {
      unchanged.push(sub)
      continue
    }
    const copy = { ...packet, qos: effectiveQoS } as AedesPublishPacket
    if (ids.length > 0) {
      copy.properties = { ...packet.properties, subscriptionIdentifier: ids.length === 1 ? ids[0] : ids } as AedesPublishPacket['properties']
    }
    variants.push(enqueue([sub], copy))
  }
  if (unchanged.length > 0) variants.push(enqueue(unchanged, packet))
  await Promise.all(variants)
}

function isPlain(subs: StoredSubscription[], packet: AedesPublishPacket): boolean {
  if (subs.length === 1) {
    const sub = subs[0]!
    return sub.qos >= packet.qos && sub.subscriptionIdentifier === undefined
  }
  for (const sub of subs) if (sub.qos < packet.qos || sub.subscriptionIdentifier !== undefined) return false
  return distinctSessions(subs)
}

/** No session listed twice: pairwise for a few (no Set per message), a Set beyond. */
function distinctSessions(subs: StoredSubscription[]): boolean {
  if (subs.length > 16) return new Set(subs.map((sub) => sub.clientId)).size === subs.length
  for (let i = 1; i < subs.length; i++) {
    const id = subs[i]!.clientId
    for (let j = 0; j < i; j++) if (subs[j]!.clientId === id) return false
  }
  return true
}
