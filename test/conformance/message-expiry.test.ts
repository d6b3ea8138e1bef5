import { describe, expect, it } from 'vitest'
import { useBroker } from '../helpers/in-process-broker.js'
import { collectMessages, sleep } from '../helpers/mqtt-clients.js'
import { storeConfigs } from '../helpers/stores.js'

// §3.3.2.3.3 Message Expiry Interval, for queued and retained messages.
describe.each(storeConfigs())('message expiry ($name store)', ({ store }) => {
  const { running, pool } = useBroker(() => ({ store: store() }))

  const session = (clientId: string) => ({ protocolVersion: 5 as const, clientId, clean: false, properties: { sessionExpiryInterval: 60 } })

  it('[MQTT-3.3.2-5] never delivers a queued message whose interval has passed', async () => {
    const away = await pool.connect(running.url, session('expiry-away'))
    await away.subscribeAsync('exp/q', { qos: 1 })
    await away.endAsync()
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync('exp/q', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } })
    await pub.publishAsync('exp/q', 'long', { qos: 1, properties: { messageExpiryInterval: 120 } })
    await sleep(2100)
    const back = pool.raw(running.url, session('expiry-away'))
    const inbox = collectMessages(back)
    await inbox.waitFor(1)
    await sleep(300)
    expect(inbox.messages.map((m) => m.payload.toString())).toEqual(['long'])
  })

  it('[MQTT-3.3.2-6] a forwarded message carries the remaining interval', async () => {
    const away = await pool.connect(running.url, session('expiry-remaining'))
    await away.subscribeAsync('exp/r', { qos: 1 })
    await away.endAsync()
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync('exp/r', 'x', { qos: 1, properties: { messageExpiryInterval: 30 } })
    await sleep(1100)
    const back = pool.raw(running.url, session('expiry-remaining'))
    const inbox = collectMessages(back)
    const [msg] = await inbox.waitFor(1)
    const remaining = msg?.packet.properties?.messageExpiryInterval ?? 0
    expect(remaining).toBeGreaterThan(0)
    expect(remaining).toBeLessThan(30)
  })

  it('forwards the interval on live delivery', async () => {
    const sub = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('exp/live', { qos: 1 })
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync('exp/live', 'x', { qos: 1, properties: { messageExpiryInterval: 45 } })
    const [msg] = await inbox.waitFor(1)
    expect(msg?.packet.properties?.messageExpiryInterval).toBeLessThanOrEqual(45)
    expect(msg?.packet.properties?.messageExpiryInterval).toBeGreaterThan(40)
  })

  it('drops an expired retained message instead of delivering it on subscribe', async () => {
    const pub = await pool.connect(running.url, { protocolVersion: 5 })
    await pub.publishAsync('exp/retained', 'stale', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } })
    await sleep(2100)
    const late = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(late)
    await late.subscribeAsync('exp/retained', { qos: 1 })
    await sleep(300)
    expect(inbox.messages).toHaveLength(0)
  })
})
