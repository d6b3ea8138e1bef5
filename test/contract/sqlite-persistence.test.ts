import assert from 'node:assert'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, test } from 'vitest'
import { SqlitePersistence } from '../../src/persistence/sqlite-persistence.js'

// aedes-persistence's own conformance suite (node:test style) under vitest: each of its tests gets
// a context with loose node:assert as t.assert and no-op plan/diagnostic, and a fresh store.
type SuiteTest = (name: string, fn: (t: object) => Promise<void>) => void
const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: {
  test: SuiteTest
  testAsync: true
  persistence: () => Promise<SqlitePersistence>
}) => void

const adapter: SuiteTest = (name, fn) => test(name, () => fn({ assert, plan() {}, diagnostic() {} }))

describe('SqlitePersistence (:memory:) conforms to aedes-persistence', () => {
  abstractPersistence({ test: adapter, testAsync: true, persistence: async () => new SqlitePersistence(':memory:') })
})

describe('SqlitePersistence (file, WAL) conforms to aedes-persistence', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mqlite-contract-'))
  let n = 0
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  abstractPersistence({
    test: adapter,
    testAsync: true,
    persistence: async () => new SqlitePersistence({ path: join(dir, `store-${++n}.db`) }),
  })
})
