import { afterAll, beforeAll, describe } from 'vitest'
import { RedisPersistence } from '../../src/persistence/redis-persistence.js'
import { runPersistenceSuite } from '../helpers/persistence-suite.js'
import { redisAvailable, startRedisServer, type RedisServer } from '../helpers/redis-server.js'

// The same aedes-persistence conformance suite as the SQLite store, against a real redis-server;
// each test gets its own key prefix, so they never see each other's data.
describe.skipIf(!redisAvailable('redis-persistence.test.ts'))('RedisPersistence conforms to aedes-persistence', () => {
  let redis: RedisServer
  let n = 0
  beforeAll(async () => {
    redis = await startRedisServer()
  })
  afterAll(async () => redis?.close())
  runPersistenceSuite(
    async () =>
      new RedisPersistence({
        url: redis.url,
        keyPrefix: `contract${++n}:`,
        nodeId: 'node-a',
        connectTimeoutMs: 5000,
        maxQueuedMessages: 0,
        maxQueuedBytes: 0,
        queuePolicy: 'drop-oldest',
      }),
  )
})
