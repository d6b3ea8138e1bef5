import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { createBroker } from '../../src/app.js'
import { createClientPool } from '../helpers/mqtt-clients.js'

// The store's setup and close are held open by gates, so the broker stays 'starting' (and later
// 'closing') for exactly as long as the test needs: no race with a fast in-memory store.
const gates = vi.hoisted(() => {
  const gate = () => {
    let open!: () => void
    const opened = new Promise<void>((resolve) => (open = resolve))
    return { open, opened }
  }
  return { setup: gate(), close: gate() }
})

vi.mock('../../src/persistence/create-store.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/persistence/create-store.js')>()
  return {
    ...original,
    createStore: (...args: Parameters<typeof original.createStore>) => {
      const store = original.createStore(...args) as ReturnType<typeof original.createStore> & { setup(broker: unknown): Promise<void> }
      const setup = store.setup.bind(store)
      const close = store.close.bind(store)
      store.setup = async (broker: unknown) => {
        await gates.setup.opened
        await setup(broker)
      }
      store.close = async () => {
        await gates.close.opened
        await close()
      }
      return store
    },
  }
})

async function readyz(base: string): Promise<[number, string]> {
  const res = await fetch(`${base}/readyz`)
  return [res.status, await res.text()]
}

async function waitFor<T>(get: () => T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 5000
  for (;;) {
    const value = get()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('readiness', () => {
  it('is 503 while starting, 200 when ready, 503 while shutting down; /healthz is 200 throughout', async () => {
    const broker = createBroker(
      {
        listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }],
        store: { type: 'memory' },
        metrics: { enabled: true, host: '127.0.0.1', port: 0 },
        sys: { interval: 0 },
      },
      { logger: pino({ level: 'silent' }) },
    )
    const started = broker.listen()
    const server = await waitFor(() => broker.metrics.server, 'the metrics listener')
    const base = server.url
    try {
      expect(broker.state).toBe('starting')
      expect(await readyz(base)).toEqual([503, 'starting\n'])
      expect((await fetch(`${base}/healthz`)).status).toBe(200)
      // /metrics already answers while starting
      expect((await fetch(`${base}/metrics`)).status).toBe(200)

      gates.setup.open()
      await started
      expect(await readyz(base)).toEqual([200, 'ready\n'])

      // A connected client: shutdown has to disconnect it before it reaches the store.
      const pool = createClientPool()
      await pool.connect(broker.listeners[0]!.url)
      const closed = broker.close()
      await waitFor(() => (broker.state === 'closing' ? true : undefined), 'closing')
      expect(await readyz(base)).toEqual([503, 'closing\n'])
      expect((await fetch(`${base}/healthz`)).status).toBe(200)
      await pool.closeAll()

      gates.close.open()
      await closed
      expect(broker.state).toBe('closed')
      // The metrics listener closes last, with the broker.
      await expect(fetch(`${base}/healthz`)).rejects.toThrow()
    } finally {
      gates.setup.open()
      gates.close.open()
      await broker.close()
    }
  })
})
