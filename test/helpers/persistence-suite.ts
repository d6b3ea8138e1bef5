import assert from 'node:assert'
import { createRequire } from 'node:module'
import { test } from 'vitest'

// aedes-persistence's own conformance suite (node:test style) under vitest: each of its tests gets
// a context with loose node:assert as t.assert and no-op plan/diagnostic, and a fresh store from
// `persistence`.
type SuiteTest = (name: string, fn: (t: object) => Promise<void>) => void
const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: {
  test: SuiteTest
  testAsync: true
  persistence: () => Promise<object>
}) => void

const adapter: SuiteTest = (name, fn) => test(name, () => fn({ assert, plan() {}, diagnostic() {} }))

/** Registers every test of the suite in the current describe block. */
export function runPersistenceSuite(persistence: () => Promise<object>): void {
  abstractPersistence({ test: adapter, testAsync: true, persistence })
}
