import type { Aedes } from 'aedes'
import type { Authorizer } from './auth/authorizer.js'
import { AuthStats } from './auth/auth-stats.js'
import { createFileAuthorizer, type FileAuthorizer } from './auth/file-authorizer.js'
import { describeListenerAuth } from './auth/listener-auth.js'
import { createConnectionGate, type ConnectionGate } from './limits/connection-gate.js'
import { LimitStats } from './limits/limit-stats.js'
import type { RetainedLimit } from './limits/retained-limit.js'
import { createAedes } from './broker/create-aedes.js'
import { isSessionStore, manageSessions, type SessionLifecycle } from './broker/session-lifecycle.js'
import { SHARE_PREFIX, hasSubscriptionListing, type SharedSubscriptions } from './broker/shared-subscriptions.js'
import { recordConnection } from './broker/connection-info.js'
import { logBrokerEvents } from './broker/log-events.js'
import { validateConfig } from './config/load.js'
import type { Config, ConfigInput } from './config/schema.js'
import { createListener } from './listeners/create-listener.js'
import type { Listener } from './listeners/listener.js'
import { createLogger, type Logger } from './log/logger.js'
import { createMetrics, type BrokerMetrics } from './metrics/create-metrics.js'
import { createStore, type Store } from './persistence/create-store.js'
import { RedisPersistence } from './persistence/redis-persistence.js'
import { createClusterNode, type ClusterNode } from './cluster/cluster-node.js'
import { randomBytes } from 'node:crypto'

/** The broker's lifecycle as one value: readiness, shutdown and tests all read it. */
export type BrokerState = 'idle' | 'starting' | 'ready' | 'closing' | 'closed'

export interface BrokerOptions {
  logger?: Logger
  authorizer?: Authorizer
}

export interface MqliteBroker {
  readonly config: Config
  readonly logger: Logger
  readonly state: BrokerState
  /** The aedes instance, once listening. */
  readonly aedes: Aedes | undefined
  readonly listeners: readonly Listener[]
  /** Counters, the metrics HTTP endpoint and $SYS topics. */
  readonly metrics: BrokerMetrics
  /** Refused logins and denied actions, limits hit, open connections, retained totals. */
  readonly security: BrokerSecurity
  /**
   * SIGHUP: re-reads the password and ACL files and the TLS certificates, without dropping any
   * connection. Every part is tried; throws an AggregateError naming what failed (that part keeps
   * its previous state).
   */
  reload(): void
  /** Opens the store, starts aedes and binds every listener. Rejects (and cleans up) on any failure. */
  listen(): Promise<void>
  /**
   * Stops accepting, disconnects clients (MQTT 5 ones with 0x8B), flushes and closes the store.
   * Idempotent: every call returns the same promise.
   */
  close(): Promise<void>
}

/** Counters a metrics collector reads at scrape time; see src/auth/auth-stats.ts and src/limits/limit-stats.ts. */
export interface BrokerSecurity {
  readonly auth: AuthStats
  readonly limits: LimitStats
  readonly connections: ConnectionGate['open']
  /** retained messages and bytes counted against the limits, once listening */
  readonly retained: RetainedLimit | undefined
}

/** Builds a broker from a config object (validated here; bad input throws a ConfigError). */
export function createBroker(input: ConfigInput | Config = {}, options: BrokerOptions = {}): MqliteBroker {
  const config = validateConfig(input)
  const logger = options.logger ?? createLogger(config.log)
  const authStats = new AuthStats()
  const limitStats = new LimitStats()
  const gate = createConnectionGate(config.limits, limitStats)
  // Built from `auth` in listen() (it reads files) unless the caller brings its own.
  let fileAuthorizer: FileAuthorizer | undefined
  let authorizer: Authorizer | undefined = options.authorizer
  let retained: RetainedLimit | undefined
  let state: BrokerState = 'idle'
  let store: Store | undefined
  let aedes: Aedes | undefined
  let shared: SharedSubscriptions | undefined
  let sessions: SessionLifecycle | undefined
  let cluster: ClusterNode | undefined
  // a cluster node needs its id before aedes exists (the store marks the sessions it holds)
  const nodeId = config.brokerId ?? (config.cluster ? `mqlite-${randomBytes(4).toString('hex')}` : undefined)
  const listeners: Listener[] = []
  let closing: Promise<void> | undefined
  const metrics = createMetrics({
    config,
    logger,
    // a cluster node that lost Redis is up but not ready
    state: () => (state === 'ready' && cluster && !cluster.ready ? 'unavailable' : state),
    listenerNames: () => listeners.map((l) => l.name),
    security: { authFailures: authStats.authFailures, denied: authStats.denied, limitHits: limitStats.hits },
    ...(config.cluster && nodeId !== undefined && { node: nodeId }),
  })

  async function listen(): Promise<void> {
    if (state !== 'idle') throw new Error(`listen() called while ${state}`)
    state = 'starting'
    try {
      // First, so /readyz can answer 503 while the rest starts.
      await metrics.listen()
      if (!authorizer) authorizer = fileAuthorizer = createFileAuthorizer(config.auth, authStats)
      store = createStore(config, logger, { onCommit: metrics.observeCommit, onDrop: metrics.drop }, nodeId)
      if (config.cluster && store instanceof RedisPersistence) {
        cluster = await createClusterNode(config.cluster, nodeId as string, store, logger)
      }
      const node = cluster
      const core = await createAedes({
        config,
        store,
        authorizer,
        logger,
        onDrop: metrics.drop,
        limitStats,
        onDenied: (action, client, topic) => authStats.recordDenied(action, client.id, topic),
        ...(node && { cluster: node.aedesOptions, storeAvailable: () => node.ready, shareDirectory: node.shares }),
      })
      retained = core.retained
      const broker = core.aedes
      aedes = broker
      cluster?.attach(broker)
      metrics.attach(broker, store)
      shared = core.shared
      if (isSessionStore(store)) sessions = manageSessions(broker, store, logger)
      // (a cluster's groups come from Redis with every node's members)
      if (hasSubscriptionListing(store) && !cluster) shared.restore(store.subscriptionsWithPrefix(SHARE_PREFIX))
      logBrokerEvents(broker, logger)
      for (const listenerConfig of config.listeners) {
        let listenerName = ''
        const listener = await createListener(listenerConfig, (stream, req) => {
          const remoteAddress = (req?.socket ?? (stream as { remoteAddress?: string })).remoteAddress
          // limits first: a refused connection costs no MQTT parsing at all
          if (gate.admit(stream, listenerName, remoteAddress) !== undefined) return
          recordConnection(stream, listenerName, req)
          broker.handle(stream, req as never)
        })
        listenerName = listener.name
        listeners.push(listener)
        gate.registerListener(listener.name, listenerConfig.maxConnections ?? 0)
        logger.info({ listener: listener.name, url: listener.url, port: listener.address.port }, 'listener started')
        if (fileAuthorizer) {
          const mode = fileAuthorizer.registerListener(listener.name, listenerConfig)
          logger.info({ listener: listener.name, ...mode }, `listener ${listener.name}: ${describeListenerAuth(mode, config.auth.passwordFile)}`)
        }
      }
      state = 'ready'
      logger.info({ brokerId: broker.id, store: config.cluster ? 'redis' : config.store.type }, 'mqlite ready')
    } catch (err) {
      await close()
      throw err
    }
  }

  function reload(): void {
    const failures: unknown[] = []
    try {
      fileAuthorizer?.reload()
    } catch (err) {
      failures.push(err)
    }
    for (const listener of listeners) {
      try {
        listener.reloadCertificates?.()
      } catch (err) {
        failures.push(err)
      }
    }
    if (failures.length > 0) throw new AggregateError(failures, `reload failed: ${failures.map((e) => (e as Error).message).join('; ')}`)
    logger.info({ passwordFile: config.auth.passwordFile, aclFile: config.auth.aclFile }, 'reloaded password file, ACL and certificates')
  }

  function close(): Promise<void> {
    closing ??= shutdown()
    return closing
  }

  async function shutdown(): Promise<void> {
    state = 'closing'
    for (const listener of listeners) listener.stopAccepting()
    const steps: Array<[string, () => Promise<void>]> = [
      ['broker', () => (aedes ? new Promise<void>((resolve) => aedes?.close(() => resolve())) : Promise.resolve())],
      ['shared subscriptions', async () => shared?.close()],
      ['sessions', async () => sessions?.close()],
      ['cluster', async () => cluster?.close()],
      ['listeners', () => Promise.all(listeners.map((l) => l.close())).then(() => undefined)],
      ['store', () => (store ? store.close() : Promise.resolve())],
      // Last, so /readyz answers 503 until the very end.
      ['metrics', () => metrics.close()],
    ]
    // Each step runs even if an earlier one failed: a stuck listener must not keep the store open.
    for (const [name, step] of steps) {
      try {
        await step()
      } catch (err) {
        logger.error({ err, step: name }, 'error during shutdown')
      }
    }
    state = 'closed'
    logger.info('mqlite stopped')
  }

  return {
    config,
    logger,
    get state() {
      return state
    },
    get aedes() {
      return aedes
    },
    listeners,
    metrics,
    security: {
      auth: authStats,
      limits: limitStats,
      connections: gate.open,
      get retained() {
        return retained
      },
    },
    reload,
    listen,
    close,
  }
}
