import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe } from 'vitest'
import { SqlitePersistence } from '../../src/persistence/sqlite-persistence.js'
import { runPersistenceSuite } from '../helpers/persistence-suite.js'

describe('SqlitePersistence (:memory:) conforms to aedes-persistence', () => {
  runPersistenceSuite(async () => new SqlitePersistence(':memory:'))
})

describe('SqlitePersistence (file, WAL) conforms to aedes-persistence', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mqlite-contract-'))
  let n = 0
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  runPersistenceSuite(async () => new SqlitePersistence({ path: join(dir, `store-${++n}.db`) }))
})
