import assert from 'node:assert'
import { createRequire } from 'node:module'
import { test } from 'vitest'

// aedes-persistence's own conformance suite (node:test style) under vitest: each of its tests gets
// a context with loose node:assert as t.assert and no-op plan/diagnostic, and a fresh store from
// `persistence`. Its deepEqual counts a field holding undefined as absent: every aedes-packet
// Packet has all its fields, some undefined (patches/aedes-packet+4.0.1.patch), where the suite
// expects them left out, and aedes reads these fields without asking whether they are there.
type SuiteTest = (name: string, fn: (t: object) => Promise<void>) => void
const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: {
  test: SuiteTest
  testAsync: true
  persistence: () => Promise<object>
}) => void

/** A copy of objects and arrays without the fields that hold undefined; Buffers and scalars as they are. */
function definedFields(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(definedFields)
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined).map(([key, field]) => [key, definedFields(field)]))
}

const suiteAssert = Object.assign(Object.create(assert) as typeof assert, {
  deepEqual: (actual: unknown, expected: unknown, message?: string) => assert.deepEqual(definedFields(actual), definedFields(expected), message),
})

const adapter: SuiteTest = (name, fn) => test(name, () => fn({ assert: suiteAssert, plan() {}, diagnostic() {} }))

/** Registers every test of the suite in the current describe block. */
export function runPersistenceSuite(persistence: () => Promise<object>): void {
  abstractPersistence({ test: adapter, testAsync: true, persistence })
}
