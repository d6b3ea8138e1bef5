import { pino, type Logger } from 'pino'
import pretty from 'pino-pretty'
import type { Config } from '../config/schema.js'

export type { Logger }

/** Structured JSON logs on stdout; human-readable when asked to or when stdout is a terminal. */
export function createLogger(config: Config['log']): Logger {
  const usePretty = config.pretty === true || (config.pretty === 'auto' && process.stdout.isTTY === true)
  const options = { level: config.level, base: { name: 'mqlite' } }
  // Synchronous writes: a log line about a crash or a shutdown must not be lost in a buffer.
  if (usePretty) return pino(options, pretty({ sync: true, ignore: 'pid,hostname,name' }))
  return pino(options, pino.destination({ dest: 1, sync: true }))
}
