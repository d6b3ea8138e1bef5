import type { Aedes } from 'aedes'
import { allowAllAuthorizer, type Authorizer } from './auth/authorizer.js'
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
  /** Opens the store, starts aedes and binds every listener. Rejects (and cleans up) on any failure. */
  listen(): Promise<void>
  /**
   * Stops accepting, disconnects clients (MQTT 5 ones with 0x8B), flushes and closes the store.
   * Idempotent: every call returns the same promise.
   */
  close(): Promise<void>
}

/** Builds a broker from a config object (validated here; bad input throws a ConfigError). */
export function createBroker(input: ConfigInput | Config = {}, options: BrokerOptions = {}): MqliteBroker {
  const config = validateConfig(input)
  const logger = options.logger ?? createLogger(config.log)
  const authorizer = options.authorizer ?? allowAllAuthorizer
  let state: BrokerState = 'idle'
  let store: Store | undefined
  let aedes: Aedes | undefined
  let shared: SharedSubscriptions | undefined
  let sessions: SessionLifecycle | undefined
  const listeners: Listener[] = []
  let closing: Promise<void> | undefined
  const metrics = createMetrics({ config, logger, state: () => state, listenerNames: () => listeners.map((l) => l.name) })

  async function listen(): Promise<void> {
    if (state !== 'idle') throw new Error(`listen() called while ${state}`)
    state = 'starting'
    try {
      // First, so /readyz can answer 503 while the rest starts.
      await metrics.listen()
      store = createStore(config, logger, { onCommit: metrics.observeCommit, onDrop: metrics.drop })
      const core = await createAedes({ config, store, authorizer, logger, onDrop: metrics.drop })
      const broker = core.aedes
      aedes = broker
      metrics.attach(broker, store)
      shared = core.shared
      if (isSessionStore(store)) sessions = manageSessions(broker, store, logger)
      if (hasSubscriptionListing(store)) shared.restore(store.subscriptionsWithPrefix(SHARE_PREFIX))
      logBrokerEvents(broker, logger)
      for (const listenerConfig of config.listeners) {
        let listenerName = ''
        const listener = await createListener(listenerConfig, (stream, req) => {
          recordConnection(stream, listenerName, req)
          broker.handle(stream, req as never)
        })
        listenerName = listener.name
        listeners.push(listener)
        logger.info({ listener: listener.name, url: listener.url, port: listener.address.port }, 'listener started')
      }
      state = 'ready'
      logger.info({ brokerId: broker.id, store: config.store.type }, 'mqlite ready')
    } catch (err) {
      await close()
      throw err
    }
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
    listen,
    close,
  }
}
