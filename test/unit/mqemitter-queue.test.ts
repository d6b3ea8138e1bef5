import { createRequire } from 'node:module'
import { describe, expect, test } from 'vitest'

// mqemitter's queue of emits waiting for a delivery slot (patches/mqemitter+7.1.0.patch: a head
// index instead of Array.shift(), which copied the whole queue under a backlog). Order, count and
// callbacks must be what they were.
const require = createRequire(import.meta.url)
const MQEmitter = require('mqemitter') as (options: { concurrency: number }) => {
  on(topic: string, listener: (message: { topic: string; n: number }, done: () => void) => void): void
  emit(message: { topic: string; n: number }, done: () => void): void
  readonly length: number
}

describe('mqemitter emit queue', () => {
  test('a backlog far beyond the concurrency is delivered in order, each emit called back once', async () => {
    const mq = MQEmitter({ concurrency: 3 })
    const delivered: number[] = []
    mq.on('t', (message, done) => {
      delivered.push(message.n)
      setImmediate(done) // a delivery finishes a turn later, as a socket write does
    })
    const total = 5000
    const calledBack = new Array<number>(total).fill(0)
    const all = new Promise<void>((resolve) => {
      let left = total
      for (let n = 0; n < total; n++) {
        mq.emit({ topic: 't', n }, () => {
          calledBack[n]!++
          if (--left === 0) resolve()
        })
      }
    })
    expect(mq.length).toBe(total - 3)
    await all
    expect(delivered).toEqual(Array.from({ length: total }, (_, n) => n))
    expect(calledBack.every((count) => count === 1)).toBe(true)
    expect(mq.length).toBe(0)
  })

  test('a backlog whose deliveries finish synchronously does not grow the stack', async () => {
    // Each slot released ran the next queued emit inside the call that released it; when those
    // deliveries finished synchronously (a client already gone, no listener) the stack grew by a
    // few frames per queued message and the broker died with "Maximum call stack size exceeded".
    const mq = MQEmitter({ concurrency: 1 })
    let first: (() => void) | undefined
    let delivered = 0
    mq.on('t', (_message, done) => {
      delivered++
      if (first === undefined) first = done // holds the only slot while the backlog builds
      else done()
    })
    const total = 200_000
    let calledBack = 0
    for (let n = 0; n < total; n++) mq.emit({ topic: 't', n }, () => void calledBack++)
    expect(mq.length).toBe(total - 1)
    first!()
    expect(delivered).toBe(total)
    expect(calledBack).toBe(total)
    expect(mq.length).toBe(0)
  })
})
