import { createBroker, type MqliteBroker } from '../app.js'
import { loadConfig, parseAssignment, setPath } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { ConfigError } from '../errors.js'

/** Options of `mqlite start`, as commander parses them. */
export interface StartFlags {
  config?: string
  host?: string
  port?: number
  store?: string
  dataDir?: string
  db?: string
  synchronous?: string
  redis?: string
  nodeId?: string
  logLevel?: string
  metrics?: boolean
  metricsHost?: string
  metricsPort?: number
  set?: string[]
  printConfig?: boolean
}

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_CONFIG = 2

/** Turns flags into config keys (the highest-precedence source). */
export function configFromFlags(flags: StartFlags): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const put = (path: string, value: unknown): void => {
    if (value !== undefined) setPath(out, path.split('.'), value)
  }
  put('store.type', flags.store)
  put('store.path', flags.db)
  put('store.synchronous', flags.synchronous)
  put('cluster.redis.url', flags.redis)
  put('brokerId', flags.nodeId)
  put('dataDir', flags.dataDir)
  put('log.level', flags.logLevel)
  put('metrics.host', flags.metricsHost)
  put('metrics.port', flags.metricsPort)
  if (flags.metrics === false) put('metrics.enabled', false)
  for (const assignment of flags.set ?? []) {
    const { path, value } = parseAssignment(assignment)
    setPath(out, path, value)
  }
  return out
}

/**
 * Process concerns only: read the config, start the broker, wire signals, choose the exit code.
 * SIGTERM/SIGINT shut down gracefully within `shutdownTimeout`; a second signal forces the exit.
 */
export async function runStart(flags: StartFlags): Promise<void> {
  let config: Config
  try {
    const file = flags.config ?? process.env.MQLITE_CONFIG
    config = loadConfig({
      ...(file ? { file } : {}),
      env: process.env,
      flags: configFromFlags(flags),
      firstListener: { ...(flags.host !== undefined && { host: flags.host }), ...(flags.port !== undefined && { port: flags.port }) },
    })
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mqlite: ${err.message}\n`)
      process.exit(EXIT_CONFIG)
    }
    throw err
  }
  if (flags.printConfig) {
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`)
    return
  }

  const broker = createBroker(config)
  const { logger } = broker
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled promise rejection'))
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception, exiting')
    process.exit(EXIT_FAILURE)
  })
  wireSignals(broker, config.shutdownTimeout)

  try {
    await broker.listen()
  } catch (err) {
    logger.fatal({ err: err instanceof Error ? err.message : err }, 'mqlite failed to start')
    process.exit(EXIT_FAILURE)
  }
}

function wireSignals(broker: MqliteBroker, shutdownTimeout: number): void {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      broker.logger.warn({ signal }, 'second signal: forcing exit')
      process.exit(EXIT_FAILURE)
    }
    stopping = true
    broker.logger.info({ signal }, 'shutting down')
    const timer = setTimeout(() => {
      broker.logger.error({ shutdownTimeout }, 'graceful shutdown took too long: forcing exit')
      process.exit(EXIT_FAILURE)
    }, shutdownTimeout)
    timer.unref()
    broker.close().then(
      () => process.exit(EXIT_OK),
      (err: unknown) => {
        broker.logger.error({ err }, 'shutdown failed')
        process.exit(EXIT_FAILURE)
      },
    )
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  // Reload credentials, ACL and certificates in place; connections stay up.
  process.on('SIGHUP', () => {
    if (stopping) return
    try {
      broker.reload()
    } catch (err) {
      broker.logger.error({ err: (err as Error).message }, 'SIGHUP reload failed; the previous files stay in force')
    }
  })
}
