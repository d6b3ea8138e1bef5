import { createRequire } from 'node:module'
import { TopicMemo } from '../mqtt/topic-memo.js'

// The in-memory side of subscriptions: aedes asks subscriptionsByTopic on every QoS > 0 publish,
// so matching must never touch SQLite. Loaded from the subscriptions table at setup and kept in
// step with every write (and rebuilt from disk if a commit fails).

/** What subscriptionsByTopic returns, as the aedes memory store shapes it. */
export interface MatchedSubscription {
  clientId: string
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  /** MQTT 5 Subscription Identifier, present only when the subscription has one */
  subscriptionIdentifier?: number
}

interface QlobberSubInstance {
  readonly subscriptionsCount: number
  add(topic: string, value: MatchedSubscription): void
  remove(topic: string, value: { clientId: string; topic: string }): void
  match(topic: string): MatchedSubscription[]
  clear(): void
}

const require = createRequire(import.meta.url)
const QlobberSub = require('qlobber/aedes/qlobber-sub') as new (options: object) => QlobberSubInstance

// match_empty_levels: `+` matches an empty level, as in mqemitter; without it a publish to `a/`
// would find no offline `a/+` subscriber that the live path does deliver to.
const QLOBBER_OPTIONS = { separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true }

export interface IndexedSubscription {
  topic: string
  qos: number
  rh?: unknown
  rap?: unknown
  nl?: unknown
  subscriptionIdentifier?: unknown
}

export class SubscriptionIndex {
  readonly #trie = new QlobberSub(QLOBBER_OPTIONS)
  /** client id -> topic filter -> granted QoS; QoS 0 entries count as clients but are never matched */
  readonly #byClient = new Map<string, Map<string, number>>()
  /** client id -> topic filter -> Subscription Identifier; QlobberSub keeps only qos/rh/rap/nl */
  readonly #identifiers = new Map<string, Map<string, number>>()
  /** match() answers until a subscription changes: a fleet publishes to the same topics */
  readonly #matches = new TopicMemo<MatchedSubscription[]>()
  #total = 0

  /** Every subscription whose filter starts with `prefix`: a scan, for start-up only. */
  withPrefix(prefix: string): Array<{ clientId: string; topic: string; qos: number }> {
    const out: Array<{ clientId: string; topic: string; qos: number }> = []
    for (const [clientId, topics] of this.#byClient) {
      for (const [topic, qos] of topics) if (topic.startsWith(prefix)) out.push({ clientId, topic, qos })
    }
    return out
  }

  /** Adds or replaces one subscription of a client. */
  add(clientId: string, sub: IndexedSubscription): void {
    this.#matches.forget()
    let topics = this.#byClient.get(clientId)
    if (!topics) this.#byClient.set(clientId, (topics = new Map()))
    const previousQos = topics.get(sub.topic)
    if (previousQos === undefined) this.#total++
    // Offline queues only hold QoS > 0 messages, so only those subscriptions are matchable.
    if (sub.qos > 0) {
      this.#trie.add(sub.topic, {
        clientId,
        topic: sub.topic,
        qos: sub.qos,
        rh: sub.rh as number | undefined,
        rap: sub.rap as boolean | undefined,
        nl: sub.nl as boolean | undefined,
      })
    } else if (previousQos !== undefined && previousQos > 0) {
      this.#trie.remove(sub.topic, { clientId, topic: sub.topic })
    }
    topics.set(sub.topic, sub.qos)
    const identifier = typeof sub.subscriptionIdentifier === 'number' ? sub.subscriptionIdentifier : undefined
    this.#setIdentifier(clientId, sub.topic, identifier)
  }

  #setIdentifier(clientId: string, topic: string, identifier: number | undefined): void {
    let ids = this.#identifiers.get(clientId)
    if (identifier === undefined) {
      if (ids?.delete(topic) && ids.size === 0) this.#identifiers.delete(clientId)
      return
    }
    if (!ids) this.#identifiers.set(clientId, (ids = new Map()))
    ids.set(topic, identifier)
  }

  /** Removes one subscription; returns whether it existed. */
  remove(clientId: string, topic: string): boolean {
    const topics = this.#byClient.get(clientId)
    const qos = topics?.get(topic)
    if (!topics || qos === undefined) return false
    this.#matches.forget()
    if (qos > 0) this.#trie.remove(topic, { clientId, topic })
    this.#setIdentifier(clientId, topic, undefined)
    topics.delete(topic)
    this.#total--
    if (topics.size === 0) this.#byClient.delete(clientId)
    return true
  }

  /** Removes every subscription of a client. */
  removeClient(clientId: string): void {
    const topics = this.#byClient.get(clientId)
    if (!topics) return
    for (const topic of [...topics.keys()]) this.remove(clientId, topic)
  }

  has(clientId: string, topic: string): boolean {
    return this.#byClient.get(clientId)?.has(topic) ?? false
  }

  /** The QoS > 0 subscriptions matching `topic`; the array is shared: callers only read it. */
  match(topic: string): MatchedSubscription[] {
    let matches = this.#matches.get(topic)
    if (matches !== undefined) return matches
    matches = this.#trie.match(topic)
    if (this.#identifiers.size > 0) {
      for (const match of matches) {
        const identifier = this.#identifiers.get(match.clientId)?.get(match.topic)
        if (identifier !== undefined) match.subscriptionIdentifier = identifier
      }
    }
    this.#matches.set(topic, matches)
    return matches
  }

  /** QoS > 0 subscriptions (what countOffline reports as subscriptions) */
  get matchableCount(): number {
    return this.#trie.subscriptionsCount
  }

  /** all subscriptions, QoS 0 included */
  get totalCount(): number {
    return this.#total
  }

  /** clients with at least one subscription */
  get clientCount(): number {
    return this.#byClient.size
  }

  clear(): void {
    this.#matches.forget()
    this.#trie.clear()
    this.#byClient.clear()
    this.#identifiers.clear()
    this.#total = 0
  }
}
