import { Registry, collectDefaultMetrics } from 'prom-client'
import { CONNECT_RESULTS, DROP_REASONS, type BrokerStats } from './broker-stats.js'
import { collectedMetric, histogramSamples, type MetricDefinition, type Sample } from './collected-metric.js'
import { PROTOCOLS, type BrokerSnapshot } from './broker-snapshot.js'

export interface MetricSources {
  stats: BrokerStats
  version: string
  /** ms since the epoch when the broker was created */
  startedAt: number
  /** names of the bound MQTT listeners, so each has series from the start */
  listenerNames(): readonly string[]
  snapshot(): BrokerSnapshot
  /** what authentication, the ACL and the limits refused (plain counters, read at scrape) */
  security?: SecurityCounters
}

export interface SecurityCounters {
  authFailures: Readonly<Record<string, number>>
  denied: Readonly<Record<string, number>>
  limitHits: Readonly<Record<string, number>>
}

/**
 * The mqlite_ families. Read functions run at scrape time only. A value the broker cannot know
 * (e.g. queue sizes of a store without stats()) yields no sample rather than a made-up zero.
 */
export function brokerMetricDefinitions(sources: MetricSources): MetricDefinition[] {
  const { stats } = sources
  const snap = (): BrokerSnapshot => sources.snapshot()
  const listeners = () => {
    for (const name of sources.listenerNames()) stats.listener(name)
    return [...stats.listeners.values()]
  }
  const storeValue = (value: number | undefined): Sample[] => (value === undefined ? [] : [{ value }])
  const byQos = (values: Float64Array): Sample[] => [0, 1, 2].map((qos) => ({ labels: { qos: String(qos) }, value: values[qos]! }))

  return [
    {
      name: 'mqlite_build_info',
      type: 'gauge',
      labelNames: ['version'],
      help: 'Always 1; the version label is the running mqlite version.',
      read: () => [{ labels: { version: sources.version }, value: 1 }],
    },
    {
      name: 'mqlite_uptime_seconds',
      type: 'gauge',
      labelNames: [],
      help: 'Seconds since the broker was created.',
      read: () => [{ value: (Date.now() - sources.startedAt) / 1000 }],
    },
    {
      name: 'mqlite_messages_received_total',
      type: 'counter',
      labelNames: ['qos'],
      help: 'PUBLISH packets received from clients, by the QoS they were sent with.',
      read: () => byQos(stats.received),
    },
    {
      name: 'mqlite_messages_sent_total',
      type: 'counter',
      labelNames: ['qos'],
      help: 'PUBLISH packets sent to clients (one per subscriber), by delivered QoS; retransmissions not counted.',
      read: () => byQos(stats.sent),
    },
    {
      name: 'mqlite_messages_dropped_total',
      type: 'counter',
      labelNames: ['reason'],
      help: 'PUBLISH packets, or one subscriber\'s copy of one, not delivered: queue_full, expired, too_large, no_subscribers, not_authorized.',
      read: () => DROP_REASONS.map((reason, i) => ({ labels: { reason }, value: stats.dropped[i]! })),
    },
    {
      name: 'mqlite_bytes_received_total',
      type: 'counter',
      labelNames: ['listener'],
      help: 'Bytes read from client connections (transport level: TLS and WebSocket framing included).',
      read: () => listeners().map((l) => ({ labels: { listener: l.name }, value: stats.bytesIn(l) })),
    },
    {
      name: 'mqlite_bytes_sent_total',
      type: 'counter',
      labelNames: ['listener'],
      help: 'Bytes written to client connections (transport level: TLS and WebSocket framing included).',
      read: () => listeners().map((l) => ({ labels: { listener: l.name }, value: stats.bytesOut(l) })),
    },
    {
      name: 'mqlite_connections',
      type: 'gauge',
      labelNames: ['listener'],
      help: 'Open network connections, whether or not they completed CONNECT.',
      read: () => listeners().map((l) => ({ labels: { listener: l.name }, value: l.open })),
    },
    {
      name: 'mqlite_connection_attempts_total',
      type: 'counter',
      labelNames: ['listener', 'result'],
      help: 'Connections by outcome: accepted, bad_credentials, not_authorized, refused (other CONNACK codes), failed (closed before any CONNACK).',
      read: () =>
        listeners().flatMap((l) =>
          CONNECT_RESULTS.map((result, i) => ({ labels: { listener: l.name, result }, value: l.attempts[i]! })),
        ),
    },
    {
      name: 'mqlite_clients_connected',
      type: 'gauge',
      labelNames: ['protocol'],
      help: 'Clients connected (CONNECT accepted), by MQTT protocol version: 3.1, 3.1.1, 5.',
      read: () => PROTOCOLS.map((protocol) => ({ labels: { protocol }, value: snap().clientsByProtocol[protocol] })),
    },
    {
      name: 'mqlite_sessions',
      type: 'gauge',
      labelNames: ['state'],
      help: 'Sessions: online (client connected) and offline (persistent session kept for an absent client).',
      read: () => {
        const { clientsByProtocol, store } = snap()
        const online = PROTOCOLS.reduce((sum, p) => sum + clientsByProtocol[p], 0)
        const offline = store.sessions !== undefined ? Math.max(0, store.sessions - online) : stats.offlineSessions.size
        return [
          { labels: { state: 'online' }, value: online },
          { labels: { state: 'offline' }, value: offline },
        ]
      },
    },
    {
      name: 'mqlite_subscriptions',
      type: 'gauge',
      labelNames: [],
      help: 'Subscriptions, shared ones included: those of persistent sessions (as the store counts them) plus those of connected clean sessions. Without store statistics, connected clients only.',
      read: () => {
        const { store, cleanSessionSubscriptions, liveSubscriptions } = snap()
        return [{ value: store.subscriptions !== undefined ? store.subscriptions + cleanSessionSubscriptions : liveSubscriptions }]
      },
    },
    {
      name: 'mqlite_retained_messages',
      type: 'gauge',
      labelNames: [],
      help: 'Retained messages in the store ($SYS topics included).',
      read: () => storeValue(snap().store.retained),
    },
    {
      name: 'mqlite_queued_messages',
      type: 'gauge',
      labelNames: [],
      help: 'Messages waiting in persistent session queues, not sent yet (store statistics; absent for the memory store).',
      read: () => storeValue(snap().store.queued),
    },
    {
      name: 'mqlite_inflight_messages',
      type: 'gauge',
      labelNames: [],
      help: 'QoS 1/2 messages sent to persistent sessions and not acknowledged yet (store statistics; absent for the memory store).',
      read: () => storeValue(snap().store.inflight),
    },
    {
      name: 'mqlite_store_held_messages_total',
      type: 'counter',
      labelNames: ['outcome'],
      help: 'QoS 1 messages for a connected persistent session held in memory for its PUBACK (store.ackWindowMs): acknowledged in time (never written) or written (SQLite store only).',
      read: () => {
        const held = snap().store.held
        if (held === undefined) return []
        return [
          { labels: { outcome: 'acknowledged' }, value: held.acknowledged },
          { labels: { outcome: 'written' }, value: held.written },
        ]
      },
    },
    {
      name: 'mqlite_store_size_bytes',
      type: 'gauge',
      labelNames: [],
      help: 'Size of the database on disk (absent for the memory store).',
      read: () => storeValue(snap().store.dbBytes),
    },
    {
      name: 'mqlite_message_latency_seconds',
      type: 'histogram',
      labelNames: [],
      help: 'Time from a PUBLISH arriving to its copy going out to a subscriber\'s connection (at the write of its event-loop turn), live deliveries (not the offline queue).',
      read: () => histogramSamples('mqlite_message_latency_seconds', stats.latency),
    },
    {
      name: 'mqlite_store_commit_duration_seconds',
      type: 'histogram',
      labelNames: [],
      help: 'Duration of one store commit (a batch of writes made durable together).',
      read: () => histogramSamples('mqlite_store_commit_duration_seconds', stats.commitDuration),
    },
    {
      name: 'mqlite_store_commit_batch_size',
      type: 'histogram',
      labelNames: [],
      help: 'Writes made durable by one store commit.',
      read: () => histogramSamples('mqlite_store_commit_batch_size', stats.commitBatchSize),
    },
    ...securityDefinitions(sources.security),
  ]
}

const byKey = (label: string, counts: Readonly<Record<string, number>>): Sample[] =>
  Object.entries(counts).map(([key, value]) => ({ labels: { [label]: key }, value }))

function securityDefinitions(security: SecurityCounters | undefined): MetricDefinition[] {
  if (!security) return []
  return [
    {
      name: 'mqlite_auth_failures_total',
      type: 'counter',
      labelNames: ['reason'],
      help: 'Refused logins: bad user name or password, or anonymous where it is not allowed.',
      read: () => byKey('reason', security.authFailures),
    },
    {
      name: 'mqlite_authorization_denied_total',
      type: 'counter',
      labelNames: ['action'],
      help: 'Publishes and subscriptions the ACL refused.',
      read: () => byKey('action', security.denied),
    },
    {
      name: 'mqlite_limit_hits_total',
      type: 'counter',
      labelNames: ['limit'],
      help: 'Times a configured limit refused or cut something, by limit.',
      read: () => byKey('limit', security.limitHits),
    },
  ]
}

/** A prom-client registry holding the broker families. */
export function createBrokerRegistry(definitions: readonly MetricDefinition[]): Registry {
  const registry = new Registry()
  for (const definition of definitions) registry.registerMetric(collectedMetric(definition) as never)
  return registry
}

let processRegistry: Registry | undefined

/**
 * Process and Node.js runtime metrics (CPU, memory, event-loop lag, GC, handles), prefixed
 * `mqlite_`. One per process: prom-client's collectors (an event-loop delay monitor, a GC
 * observer) cannot be stopped, so brokers created in the same process share them.
 */
export function sharedProcessRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry, prefix: 'mqlite_' })
    // prom-client also exports these three totals as gauges, which Prometheus's naming rules
    // (and `promtool check metrics`) reject; the same figures remain, by type, in the families
    // without the suffix.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
      processRegistry.removeSingleMetric(`mqlite_nodejs_${name}`)
    }
  }
  return processRegistry
}
