import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { validateConfig } from '../../src/config/load.js'
import { createConnectionGate } from '../../src/limits/connection-gate.js'
import { isMalformedString } from '../../src/limits/hostile-input.js'
import { LimitStats } from '../../src/limits/limit-stats.js'
import { TokenBucket, burstFor } from '../../src/limits/token-bucket.js'

describe('token bucket', () => {
  it('allows a burst, then the sustained rate', () => {
    let now = 0
    const bucket = new TokenBucket(2, 3, () => now)
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false])
    now += 499
    expect(bucket.take()).toBe(false)
    now += 1
    expect(bucket.take()).toBe(true)
    expect(bucket.isFull()).toBe(false)
    now += 10_000
    expect(bucket.isFull()).toBe(true)
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false])
  })

  it('defaults the burst to one second of the rate', () => {
    expect(burstFor({ perSecond: 0.5 })).toBe(1)
    expect(burstFor({ perSecond: 10 })).toBe(10)
    expect(burstFor({ perSecond: 10, burst: 3 })).toBe(3)
  })
})

describe('connection gate', () => {
  const stream = () => new PassThrough()
  it('enforces the global and per-listener limits and releases a slot when a stream closes', async () => {
    const stats = new LimitStats()
    const gate = createConnectionGate(validateConfig({ limits: { maxConnections: 3 } }).limits, stats)
    gate.registerListener('a', 1)
    gate.registerListener('b', 0)
    const first = stream()
    expect(gate.admit(first, 'a', '10.0.0.1')).toBeUndefined()
    const refused = stream()
    expect(gate.admit(refused, 'a', '10.0.0.1')).toBe('listener_connections')
    expect(refused.destroyed).toBe(true)
    expect(gate.admit(stream(), 'b', '10.0.0.1')).toBeUndefined()
    expect(gate.admit(stream(), 'b', '10.0.0.1')).toBeUndefined()
    expect(gate.admit(stream(), 'b', '10.0.0.1')).toBe('max_connections')
    expect(gate.open.total).toBe(3)
    first.destroy()
    await new Promise((r) => setImmediate(r))
    expect(gate.open.total).toBe(2)
    expect(gate.admit(stream(), 'a', '10.0.0.1')).toBeUndefined()
    expect(stats.hits.listener_connections).toBe(1)
    expect(stats.hits.max_connections).toBe(1)
  })

  it('limits the connection rate per source address, not globally', () => {
    const stats = new LimitStats()
    const gate = createConnectionGate(validateConfig({ limits: { connectionRate: { perSecond: 1, burst: 2 } } }).limits, stats)
    gate.registerListener('a', 0)
    expect(gate.admit(stream(), 'a', '10.0.0.1')).toBeUndefined()
    expect(gate.admit(stream(), 'a', '10.0.0.1')).toBeUndefined()
    expect(gate.admit(stream(), 'a', '10.0.0.1')).toBe('connection_rate')
    expect(gate.admit(stream(), 'a', '10.0.0.2')).toBeUndefined()
    expect(stats.hits.connection_rate).toBe(1)
  })
})

describe('malformed strings', () => {
  it('flags U+0000, replacement characters from invalid UTF-8 and lone surrogates', () => {
    expect(isMalformedString('a/b/ü/😀')).toBe(false)
    expect(isMalformedString('a\u0000b')).toBe(true)
    expect(isMalformedString(Buffer.from([0x61, 0xff, 0x62]).toString('utf8'))).toBe(true)
    expect(isMalformedString('a\uD800b')).toBe(true)
    expect(isMalformedString('a\uDC00')).toBe(true)
  })
})
