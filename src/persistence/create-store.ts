import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import type { BrokerStore } from '../broker/create-aedes.js'
import { MemoryPersistence } from './memory-persistence.js'

/** A store as the broker owns it: what the broker calls, plus an orderly close. */
export type Store = BrokerStore & {
  /** Commits anything pending and releases the store. */
  close(): Promise<void>
}

export function createStore(config: Config, _logger: Logger): Store {
  switch (config.store.type) {
    case 'memory': {
      const store = new MemoryPersistence() as unknown as Store & { destroy(): Promise<void> }
      store.close = () => store.destroy()
      return store
    }
    case 'sqlite':
      throw new Error('sqlite store: not wired yet')
  }
}
