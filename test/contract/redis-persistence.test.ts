import assert from 'node:assert'
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, test } from 'vitest'
import { RedisPersistence } from '../../src/persistence/redis-persistence.js'
import { redisAvailable, startRedisServer, type RedisServer } from '../helpers/redis-server.js'

// The same aedes-persistence conformance suite as the SQLite store, against a real redis-server;
// each test gets its own key prefix, so they never see each other's data.
type SuiteTest = (name: string, fn: (t: object) => Promise<void>) => void
const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: {
  test: SuiteTest
  testAsync: true
  persistence: () => Promise<RedisPersistence>
}) => void

const adapter: SuiteTest = (name, fn) => test(name, () => fn({ assert, plan() {}, diagnostic() {} }))

describe.skipIf(!redisAvailable('redis-persistence.test.ts'))('RedisPersistence conforms to aedes-persistence', () => {
  let redis: RedisServer
  let n = 0
  beforeAll(async () => {
    redis = await startRedisServer()
  })
  afterAll(async () => redis?.close())
  abstractPersistence({
    test: adapter,
    testAsync: true,
    persistence: async () =>
      new RedisPersistence({
        url: redis.url,
        keyPrefix: `contract${++n}:`,
        nodeId: 'node-a',
        connectTimeoutMs: 5000,
        maxQueuedMessages: 0,
        maxQueuedBytes: 0,
        queuePolicy: 'drop-oldest',
      }),
  })
})
