import { join } from 'node:path'
import type { BrokerStore } from '../broker/create-aedes.js'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import { MemoryPersistence } from './memory-persistence.js'
import { RedisPersistence } from './redis-persistence.js'
import { SqlitePersistence } from './sqlite-persistence.js'

/** A store as the broker owns it: what the broker calls, plus an orderly close. */
export type Store = BrokerStore & {
  /** Commits anything pending and releases the store. */
  close(): Promise<void>
}

/** What the store reports as it works; the metrics feed on it. */
export interface StoreObserver {
  onCommit?: (batchSize: number, durationSeconds: number) => void
  onDrop?: (reason: 'queue_full' | 'expired', count: number) => void
}

/** `nodeId` names this node in cluster mode (sessions it holds, logs). */
export function createStore(config: Config, logger: Logger, observer: StoreObserver = {}, nodeId?: string): Store {
  if (config.cluster) {
    const { onDrop } = observer
    const { redis, connectTimeout } = config.cluster
    return new RedisPersistence({
      url: redis.url,
      keyPrefix: redis.keyPrefix,
      nodeId: nodeId ?? config.brokerId ?? 'mqlite',
      connectTimeoutMs: connectTimeout,
      maxQueuedMessages: config.store.maxQueuedMessages,
      maxQueuedBytes: config.store.maxQueuedBytes,
      queuePolicy: config.store.queuePolicy,
      logger,
      ...(onDrop && { onDrop: (reason, count) => onDrop(reason, count) }),
    }) as unknown as Store
  }
  switch (config.store.type) {
    case 'memory': {
      const store = new MemoryPersistence() as unknown as Store & { destroy(): Promise<void> }
      store.close = () => store.destroy()
      return store
    }
    case 'sqlite': {
      const { onCommit, onDrop } = observer
      return new SqlitePersistence({
        path: config.store.path ?? join(config.dataDir, 'mqlite.db'),
        synchronous: config.store.synchronous,
        maxQueuedMessages: config.store.maxQueuedMessages,
        maxQueuedBytes: config.store.maxQueuedBytes,
        queuePolicy: config.store.queuePolicy,
        ackWindowMs: config.store.ackWindowMs,
        logger,
        ...(onCommit && { onCommit: ({ batchSize, durationSeconds }) => onCommit(batchSize, durationSeconds) }),
        ...(onDrop && { onDrop: (reason, count) => onDrop(reason, count) }),
      }) as unknown as Store
    }
  }
}
