import { describe, expect, it } from 'vitest'
import { configFromEnv, deepMerge, loadConfig, validateConfig } from '../../src/config/load.js'
import { ConfigError } from '../../src/errors.js'

describe('configuration', () => {
  it('gives a working broker with no configuration at all', () => {
    const config = validateConfig({})
    expect(config.listeners).toEqual([{ type: 'tcp', host: '127.0.0.1', port: 1883 }])
    expect(config.store.type).toBe('sqlite')
    expect(config.dataDir).toBe('./data')
    expect(Object.isFrozen(config.store)).toBe(true)
  })

  it('maps MQLITE_ variables to nested camelCase keys and parses JSON values', () => {
    const out = configFromEnv({
      MQLITE_STORE__MAX_QUEUED_MESSAGES: '10',
      MQLITE_METRICS__ENABLED: 'false',
      MQLITE_LISTENERS: '[{"type":"ws","port":0}]',
      MQLITE_DATA_DIR: '/var/lib/mqlite',
      HOME: '/root',
    })
    expect(out).toEqual({
      store: { maxQueuedMessages: 10 },
      metrics: { enabled: false },
      listeners: [{ type: 'ws', port: 0 }],
      dataDir: '/var/lib/mqlite',
    })
  })

  it('reports every problem at once, each naming its key', () => {
    let error: unknown
    try {
      validateConfig({ bogus: 1, store: { type: 'redis' }, listeners: [{ type: 'tls', port: 1 }] })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    const problems = (error as ConfigError).problems.join('\n')
    expect(problems).toContain('bogus: unknown key')
    expect(problems).toContain('store.type')
    expect(problems).toContain('listeners[0].tls')
  })

  it('refuses an environment variable that names no key', () => {
    expect(() => loadConfig({ env: { MQLITE_NOT_A_KEY: '1' } })).toThrow(/notAKey: unknown key/)
  })

  it('applies --host/--port to the first listener only', () => {
    const config = loadConfig({
      flags: { listeners: [{ type: 'tcp', port: 1 }, { type: 'ws', port: 2 }] },
      firstListener: { port: 0, host: '0.0.0.0' },
    })
    expect(config.listeners.map((l) => [l.type, l.host, l.port])).toEqual([
      ['tcp', '0.0.0.0', 0],
      ['ws', '127.0.0.1', 2],
    ])
  })

  it('merges objects key by key and replaces arrays', () => {
    expect(deepMerge({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { c: 3 }, l: [9] })).toEqual({ a: { b: 1, c: 3 }, l: [9] })
  })
})
