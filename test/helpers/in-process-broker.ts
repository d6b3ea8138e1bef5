import { pino } from 'pino'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { createBroker, type BrokerOptions, type MqliteBroker } from '../../src/app.js'
import type { ConfigInput } from '../../src/config/schema.js'
import { createClientPool } from './mqtt-clients.js'

export interface RunningBroker {
  broker: MqliteBroker
  /** port of the first listener */
  port: number
  url: string
  close(): Promise<void>
}

export type StoreKind = 'memory' | 'sqlite'

/** Starts a broker in this process on a free port, quiet unless MQLITE_TEST_LOG is set. */
export async function startBroker(
  config: ConfigInput = {},
  options: BrokerOptions = {},
): Promise<RunningBroker> {
  const broker = createBroker(
    {
      listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }],
      store: { type: 'memory' },
      metrics: { enabled: false },
      ...config,
    },
    { logger: pino({ level: process.env.MQLITE_TEST_LOG || 'silent' }), ...options },
  )
  await broker.listen()
  const first = broker.listeners[0]
  if (!first) throw new Error('broker has no listener')
  return { broker, port: first.address.port, url: first.url, close: () => broker.close() }
}

/**
 * The store object aedes calls, with mqlite's wrappers on its methods, typed as the methods a test
 * reads or replaces (to observe it or to make it slow or fail).
 */
export function aedesStore<Methods extends object>(broker: MqliteBroker): Methods {
  const aedes = broker.aedes as unknown as { persistence: Methods } | undefined
  if (!aedes) throw new Error('the broker has not started')
  return aedes.persistence
}

/**
 * A broker for one `describe` block: started before its tests and closed after them, with a
 * client pool closed after each test. `running` reads the started broker.
 */
export function useBroker(config: () => ConfigInput, options: BrokerOptions = {}) {
  const pool = createClientPool()
  let started: RunningBroker | undefined
  beforeAll(async () => {
    started = await startBroker(config(), options)
  })
  afterEach(() => pool.closeAll())
  afterAll(() => started?.close())
  const current = (): RunningBroker => {
    if (!started) throw new Error('the broker has not started')
    return started
  }
  const running = {
    get broker() {
      return current().broker
    },
    get port() {
      return current().port
    },
    get url() {
      return current().url
    },
  }
  return { running, pool }
}
