import { describe, expect, it } from 'vitest'
import { measureSyscallMicros, parseDdSeconds } from './host.js'

describe('host system-call probe', () => {
  it("reads the seconds from dd's summary line", () => {
    const stderr = '200000+0 records in\n200000+0 records out\n200000 bytes (200 kB, 195 KiB) copied, 0.256812 s, 779 kB/s\n'
    expect(parseDdSeconds(stderr)).toBe(0.256812)
    expect(parseDdSeconds('1000 bytes copied, 1.5e-05 s, 66 MB/s')).toBe(1.5e-5)
  })

  it('gives up on anything else', () => {
    expect(parseDdSeconds('')).toBeUndefined()
    expect(parseDdSeconds('dd: failed to open')).toBeUndefined()
    expect(parseDdSeconds('copied, 0 s, inf B/s')).toBeUndefined()
  })

  it('measures this host', () => {
    const micros = measureSyscallMicros(20_000)
    // dd is part of coreutils on every machine this runs on; a call takes well under a millisecond
    expect(micros).toBeGreaterThan(0)
    expect(micros).toBeLessThan(1000)
  })
})
