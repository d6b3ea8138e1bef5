import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { configReference } from '../../src/config/reference.js'
import { allMetricDefinitions } from '../helpers/metric-definitions.js'

// The README is the front door: its configuration reference and metrics list must not drift.
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('documents every configuration key', () => {
    const missing = configReference()
      .filter((k) => !k.key.includes('['))
      .filter((k) => !readme.includes(`\`${k.key}\``))
      .map((k) => k.key)
    expect(missing).toEqual([])
  })

  it('documents every listener field', () => {
    const fields = new Set(
      configReference()
        .filter((k) => k.key.includes('['))
        .map((k) => k.key.replace(/^listeners\[type=\w+\]\./, '')),
    )
    const missing = [...fields].filter((f) => !readme.includes(`\`${f}\``))
    expect(missing).toEqual([])
  })

  it('lists every metric family', () => {
    const names = allMetricDefinitions().map((d) => d.name)
    expect(names.filter((n) => !readme.includes(`\`${n}`))).toEqual([])
  })
})
