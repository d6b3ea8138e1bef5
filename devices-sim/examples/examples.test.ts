import { readdirSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { loadScenarioFile } from '../scenario/load-scenario.js'

// Shipped examples must stay valid as the schema evolves.
describe('example scenarios', () => {
  const dir = new URL('./', import.meta.url)
  it.each(readdirSync(dir).filter((f) => /\.ya?ml$|\.json$/.test(f)))('%s is valid', async (file) => {
    const scenario = await loadScenarioFile(new URL(file, dir).pathname)
    expect(scenario.profiles.length).toBeGreaterThan(0)
  })
})
