import type { Aedes } from 'aedes'
import { Registry } from 'prom-client'
import { startSysTopics, type SysTopics } from '../broker/sys-topics.js'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import { brokerMetricDefinitions, createBrokerRegistry, sharedProcessRegistry, type SecurityCounters } from './broker-metrics.js'
import { emptySnapshot, snapshotClients, type BrokerSnapshot } from './broker-snapshot.js'
import { createBrokerStats, type BrokerStats, type DropReason } from './broker-stats.js'
import { createMetricsServer, type MetricsServer } from './http-server.js'
import { instrumentBroker } from './instrument-broker.js'
import { readStoreStats, type PartialStoreStats } from './store-stats.js'
import { mqliteVersion } from '../version.js'

export interface CreateMetricsOptions {
  config: Config
  logger: Logger
  /** the broker's lifecycle state, for /readyz */
  state(): string
  /** names of the bound MQTT listeners */
  listenerNames(): readonly string[]
  security?: SecurityCounters
  /** cluster mode: this node's id, a `node` label on every broker metric and in `$SYS` topics */
  node?: string
}

/** The broker's observability: counters, the HTTP endpoint and the `$SYS` topics. */
export interface BrokerMetrics {
  /**
   * True when per-message instrumentation is installed: metrics or `$SYS` are on. With
   * `metrics.enabled: false` and `sys.interval: 0`, no hook is added to the message path.
   */
  readonly instrumented: boolean
  readonly stats: BrokerStats
  /** the HTTP endpoint once listening (metrics.enabled) */
  readonly server: MetricsServer | undefined
  /**
   * Counts messages not delivered (default 1): the broker's delivery path and the store's
   * `onDrop` (queue_full, expired) call it. Allocation-free.
   */
  readonly drop: (reason: DropReason, count?: number) => void
  /** Records one store commit (the store's commit hook calls it). */
  readonly observeCommit: (batchSize: number, durationSeconds: number) => void
  /** Starts the HTTP endpoint; first thing in `listen()`, so /readyz answers 503 while starting. */
  listen(): Promise<void>
  /** Instruments a freshly created aedes (before any listener accepts) and starts `$SYS`. */
  attach(broker: Aedes, store: unknown): void
  /** The exposition text, as `/metrics` serves it. */
  scrape(): Promise<string>
  /** Stops `$SYS` and the HTTP endpoint. Idempotent; last thing in shutdown. */
  close(): Promise<void>
}

export function createMetrics({ config, logger, state, listenerNames, security, node }: CreateMetricsOptions): BrokerMetrics {
  const stats = createBrokerStats()
  const startedAt = Date.now()
  const version = mqliteVersion()
  const instrumented = config.metrics.enabled || config.sys.interval > 0
  let broker: Aedes | undefined
  let store: unknown
  let snapshot: BrokerSnapshot = emptySnapshot()
  let server: MetricsServer | undefined
  let sys: SysTopics | undefined
  let closing: Promise<void> | undefined

  const registry = createBrokerRegistry(
    brokerMetricDefinitions({ stats, version, startedAt, listenerNames, snapshot: () => snapshot, ...(security && { security }) }),
  )
  if (node !== undefined) registry.setDefaultLabels({ node: node })

  const storeStats = async (): Promise<PartialStoreStats> => {
    // A store being opened or closed is not asked; its figures are simply absent meanwhile.
    if (store === undefined || state() !== 'ready') return {}
    try {
      return await readStoreStats(store)
    } catch (err) {
      logger.warn({ err }, 'could not read store statistics')
      return {}
    }
  }

  const scrape = async (): Promise<string> => {
    snapshot = snapshotClients(broker, await storeStats())
    const [own, processMetrics] = await Promise.all([registry.metrics(), sharedProcessRegistry().metrics()])
    return `${own}\n${processMetrics}`
  }

  return {
    instrumented,
    stats,
    get server() {
      return server
    },
    drop: instrumented ? stats.drop : noop,
    observeCommit: instrumented ? stats.observeCommit : noop,
    async listen() {
      if (!config.metrics.enabled || server) return
      server = await createMetricsServer({
        host: config.metrics.host,
        port: config.metrics.port,
        scrape: async () => ({ body: await scrape(), contentType: Registry.PROMETHEUS_CONTENT_TYPE }),
        state,
        onError: (err) => logger.error({ err }, 'metrics request failed'),
      })
      logger.info({ url: server.url, port: server.address.port }, 'metrics listener started')
    },
    attach(aedes, aedesStore) {
      if (broker) throw new Error('metrics are already attached to a broker')
      broker = aedes
      store = aedesStore
      if (!instrumented) return
      instrumentBroker(aedes, stats)
      if (config.sys.interval > 0) {
        sys = startSysTopics({
          broker: aedes,
          stats,
          version,
          startedAt,
          intervalSeconds: config.sys.interval,
          storeStats,
          ...(node !== undefined && { prefix: `$SYS/nodes/${node}/broker/` }),
          onError: (err) => logger.warn({ err }, '$SYS publish failed'),
        })
      }
    },
    scrape,
    close() {
      closing ??= (async () => {
        sys?.close()
        await server?.close()
      })()
      return closing
    },
  }
}

function noop(): void {}
