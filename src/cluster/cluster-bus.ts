import { createRequire } from 'node:module'
import { Redis } from 'ioredis'
import type { Logger } from '../log/logger.js'
import { StoreUnavailableError } from '../persistence/errors.js'
import { RedisPersistence, redactUrl } from '../persistence/redis-persistence.js'

/** The message bus aedes routes every publish through: mqemitter's interface, over Redis pub/sub. */
export interface ClusterBus {
  /** what aedes takes as its `mq` option */
  readonly mq: object
  /** both connections are up */
  readonly ready: boolean
  close(): Promise<void>
}

type Emitter = {
  /** mqemitter-redis re-emits its connections' errors here: without a listener they would throw */
  state: { on(event: 'error', listener: (err: Error) => void): void }
  _emit(packet: object, done?: (err?: Error) => void): void
  close(done: () => void): void
}
type EmitterConstructor = new (prefix: string, options: object) => Emitter

const require = createRequire(import.meta.url)
const { MQEmitterRedisPrefix } = require('mqemitter-redis') as { MQEmitterRedisPrefix: EmitterConstructor }

/**
 * mqemitter-redis with mqlite's connections (no offline queue: a publish while Redis is away fails
 * at once instead of being sent minutes later) and with msgpack's `null`s turned back into absent
 * fields, which mqtt-packet would otherwise write as empty properties or refuse.
 * Channels carry the key prefix, so clusters sharing one Redis never see each other's messages.
 */
export async function createClusterBus(url: string, keyPrefix: string, nodeId: string, connectTimeoutMs: number, logger: Logger): Promise<ClusterBus> {
  const { url: _url, ...options } = RedisPersistence.connectionOptions(url, `mqlite-${nodeId}-bus`)
  const pubConn = new Redis(url, { ...options, enableAutoPipelining: true })
  // subscriptions made while Redis is away wait for it (and are renewed on every reconnect)
  const subConn = new Redis(url, { ...options, connectionName: `mqlite-${nodeId}-bus-sub`, enableOfflineQueue: true, maxRetriesPerRequest: null })
  const onError = (err: Error): void => logger.warn({ err: err.message }, 'Redis bus connection error')
  pubConn.on('error', onError)
  subConn.on('error', onError)
  const timer = setTimeout(() => {
    pubConn.disconnect()
    subConn.disconnect()
  }, connectTimeoutMs)
  try {
    await Promise.all([pubConn.connect(), subConn.connect()])
  } catch (err) {
    pubConn.disconnect()
    subConn.disconnect()
    throw new StoreUnavailableError('Redis', `cannot reach Redis at ${redactUrl(url)}: ${(err as Error).message}`)
  } finally {
    clearTimeout(timer)
  }
  // Same matching options as aedes's default emitter: `+` matches an empty level.
  const mq = new MQEmitterRedisPrefix(keyPrefix, { pubConn, subConn, concurrency: 100, matchEmptyLevels: true })
  mq.state.on('error', () => {
    // already logged by the connections' own listeners above
  })
  const emitLocally = mq._emit.bind(mq)
  mq._emit = (packet, done) => emitLocally(withoutNulls(packet), done)
  let closing: Promise<void> | undefined
  return {
    mq,
    get ready() {
      return pubConn.status === 'ready' && subConn.status === 'ready'
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        // quit() never answers while Redis is away: fall back to dropping the connections
        const timeout = setTimeout(() => {
          pubConn.disconnect()
          subConn.disconnect()
          resolve()
        }, 2000)
        mq.close(() => {
          clearTimeout(timeout)
          resolve()
        })
      })
      return closing
    },
  }
}

/** msgpack has no `undefined`: fields that were absent arrive as null. */
function withoutNulls<T extends object>(value: T): T {
  const out: Record<string, unknown> = {}
  for (const [key, field] of Object.entries(value)) {
    if (field === null) continue
    out[key] = field !== undefined && typeof field === 'object' && !Buffer.isBuffer(field) && !Array.isArray(field) ? withoutNulls(field) : field
  }
  return out as T
}
