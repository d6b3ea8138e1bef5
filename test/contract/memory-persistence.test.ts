import { describe } from 'vitest'
import { MemoryPersistence } from '../../src/persistence/memory-persistence.js'
import { runPersistenceSuite } from '../helpers/persistence-suite.js'

// The memory store replaces the base class's outgoing queues, so it runs the same aedes-persistence
// conformance suite as the other stores.
describe('MemoryPersistence conforms to aedes-persistence', () => {
  runPersistenceSuite(async () => new MemoryPersistence())
})
