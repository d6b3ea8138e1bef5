import type { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { aedesStore, useBroker } from '../helpers/in-process-broker.js'
import { sleep } from '../helpers/mqtt-clients.js'

// On the memory store, aedes's own timer ends an expired session (_wipeSession): subscriptions,
// will, and the stored queue through client.emptyOutgoingQueue. Unpatched, that ran the queue into
// a Transform whose output nobody read: it stopped after 16 records and the rest of the queue
// stayed in memory for good. (The durable stores are also swept by mqlite: deleteSession.)
describe('session expiry (memory store)', () => {
  const { running, pool } = useBroker(() => ({ store: { type: 'memory' } }))

  it('[MQTT-3.1.2-23] forgets the whole queue of a session that expired', async () => {
    const clientId = 'expiring-with-queue'
    const away = await pool.connect(running.url, { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 1 } })
    await away.subscribeAsync('expiry/q', { qos: 1 })
    await away.endAsync()
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    for (let i = 0; i < 100; i++) await pub.publishAsync('expiry/q', String(i), { qos: 1 })
    await sleep(2500)
    const store = aedesStore<{ outgoingStream(client: { id: string }): Readable }>(running.broker)
    expect(await store.outgoingStream({ id: clientId }).toArray()).toEqual([])
  })
})
