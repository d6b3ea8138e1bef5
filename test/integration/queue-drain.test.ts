import { describe, expect, it } from 'vitest'
import { useBroker } from '../helpers/in-process-broker.js'
import { collectMessages, sleep } from '../helpers/mqtt-clients.js'
import { storeConfigs } from '../helpers/stores.js'

// The queue a session finds at CONNECT is drained by aedes's emptyQueue (patched, see
// patches/aedes+2.0.0-beta.1.patch). Unpatched, it ran the queue through a stream.pipeline into a
// Transform whose output nobody read: each record the drain dropped (expired, no longer readable,
// old session) was pushed to that output, and after 16 of them the drain stopped for good. The
// session then never became ready and its live messages stayed held behind the drain.
describe.each(storeConfigs())('queue drain at CONNECT ($name store)', ({ store }) => {
  const { running, pool } = useBroker(() => ({ store: store() }))

  const session = (clientId: string) => ({ protocolVersion: 5 as const, clientId, clean: false, properties: { sessionExpiryInterval: 60 } })

  it('gets through a queue of many expired messages and then delivers live ones', async () => {
    const away = await pool.connect(running.url, session('drain-expired'))
    await away.subscribeAsync('drain/q', { qos: 1 })
    await away.endAsync()
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    for (let i = 0; i < 40; i++) await pub.publishAsync('drain/q', `old-${i}`, { qos: 1, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync('drain/q', 'kept', { qos: 1, properties: { messageExpiryInterval: 120 } })
    await sleep(2100)
    const back = pool.raw(running.url, session('drain-expired'))
    const inbox = collectMessages(back)
    await inbox.waitFor(1)
    await pub.publishAsync('drain/q', 'live', { qos: 1 })
    await inbox.waitFor(2, 3000)
    expect(inbox.messages.map((m) => m.payload.toString())).toEqual(['kept', 'live'])
  })
})
