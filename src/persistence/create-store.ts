import type { AedesPublishPacket, Client } from 'aedes'
import type { Readable } from 'node:stream'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import type { HardenedStore } from '../broker/hardening.js'
import type { QueueingStore } from '../broker/delivery/offline-queue.js'
import { MemoryPersistence } from './memory-persistence.js'

/** A store as the broker owns it: the aedes persistence contract plus an orderly close. */
export type Store = HardenedStore &
  QueueingStore & {
  outgoingStream(client: Client): Readable
  outgoingEnqueue(sub: { clientId: string }, packet: AedesPublishPacket): Promise<void>
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
