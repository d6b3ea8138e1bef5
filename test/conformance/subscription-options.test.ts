import { describe, expect, it } from 'vitest'
import { useBroker } from '../helpers/in-process-broker.js'
import { collectMessages, sleep } from '../helpers/mqtt-clients.js'
import { storeConfigs } from '../helpers/stores.js'

// §3.8.3.1 subscription options, §3.3.4 overlapping subscriptions, §3.8.2.1.2 identifiers.
describe.each(storeConfigs())('subscription options and identifiers ($name store)', ({ store }) => {
  const { running, pool } = useBroker(() => ({ store: store() }))
  const v5 = (options = {}) => pool.connect(running.url, { protocolVersion: 5, ...options })

  it('[MQTT-3.3.4-3] a message matching several subscriptions carries every matching identifier', async () => {
    const sub = await v5()
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('ids/+/t', { qos: 1, properties: { subscriptionIdentifier: 11 } })
    await sub.subscribeAsync('ids/#', { qos: 1, properties: { subscriptionIdentifier: 22 } })
    const pub = await v5()
    await pub.publishAsync('ids/a/t', 'x', { qos: 1 })
    await inbox.waitFor(1)
    await sleep(200)
    expect(inbox.messages).toHaveLength(1)
    const ids = inbox.messages[0]?.packet.properties?.subscriptionIdentifier
    expect([ids].flat().sort()).toEqual([11, 22])
  })

  it('[MQTT-3.3.4-2] overlapping subscriptions deliver once at the highest granted QoS', async () => {
    const sub = await v5()
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('over/+', { qos: 0 })
    await sub.subscribeAsync('over/#', { qos: 2 })
    const pub = await v5()
    await pub.publishAsync('over/x', 'x', { qos: 2 })
    await inbox.waitFor(1)
    await sleep(200)
    expect(inbox.messages.map((m) => m.packet.qos)).toEqual([2])
  })

  it('[MQTT-3.8.4-8] never delivers above the QoS granted to a wildcard subscription', async () => {
    const sub = await v5()
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('wq/+', { qos: 1 })
    const pub = await v5()
    await pub.publishAsync('wq/x', 'x', { qos: 2 })
    const [msg] = await inbox.waitFor(1)
    expect(msg?.packet.qos).toBe(1)
  })

  it('[MQTT-3.8.4-8] never delivers queued messages above the granted QoS', async () => {
    const clientId = `qq-${Date.now()}`
    const session = { clientId, clean: false, properties: { sessionExpiryInterval: 60 } }
    const first = await v5(session)
    await first.subscribeAsync('qq/+', { qos: 1 })
    await first.endAsync()
    const pub = await v5()
    await pub.publishAsync('qq/x', 'x', { qos: 2 })
    const back = pool.raw(running.url, { protocolVersion: 5, ...session })
    const inbox = collectMessages(back)
    const [msg] = await inbox.waitFor(1)
    expect(msg?.packet.qos).toBe(1)
  })

  it('[MQTT-3.3.4-2][MQTT-3.3.4-3] an offline session with overlapping subscriptions gets one copy, highest QoS, every identifier', async () => {
    const clientId = `oq-${Date.now()}`
    const session = { clientId, clean: false, properties: { sessionExpiryInterval: 60 } }
    const first = await v5(session)
    await first.subscribeAsync('oq/+', { qos: 1, properties: { subscriptionIdentifier: 5 } })
    await first.subscribeAsync('oq/#', { qos: 2, properties: { subscriptionIdentifier: 6 } })
    await first.subscribeAsync('oq/x', { qos: 1 })
    await first.endAsync()
    const pub = await v5()
    await pub.publishAsync('oq/x', 'x', { qos: 2 })
    const back = pool.raw(running.url, { protocolVersion: 5, ...session })
    const inbox = collectMessages(back)
    await inbox.waitFor(1)
    await sleep(300)
    expect(inbox.messages).toHaveLength(1)
    expect(inbox.messages[0]?.packet.qos).toBe(2)
    expect([inbox.messages[0]?.packet.properties?.subscriptionIdentifier].flat().sort()).toEqual([5, 6])
  })

  it('[MQTT-3.8.3-3] No Local: a client does not receive its own publications', async () => {
    const c = await v5()
    const inbox = collectMessages(c)
    await c.subscribeAsync('nl/t', { qos: 1, nl: true })
    await c.publishAsync('nl/t', 'self', { qos: 1 })
    const other = await v5()
    await other.publishAsync('nl/t', 'other', { qos: 1 })
    await inbox.waitFor(1)
    await sleep(200)
    expect(inbox.messages.map((m) => m.payload.toString())).toEqual(['other'])
  })

  it('[MQTT-3.3.1-12] Retain As Published keeps the retain flag on forwarded messages', async () => {
    const keep = await v5()
    const keepInbox = collectMessages(keep)
    await keep.subscribeAsync('rap/t', { qos: 1, rap: true })
    const clear = await v5()
    const clearInbox = collectMessages(clear)
    await clear.subscribeAsync('rap/t', { qos: 1, rap: false })
    const pub = await v5()
    await pub.publishAsync('rap/t', 'r', { qos: 1, retain: true })
    const [kept] = await keepInbox.waitFor(1)
    const [cleared] = await clearInbox.waitFor(1)
    expect(kept?.packet.retain).toBe(true)
    expect(cleared?.packet.retain).toBe(false)
    await pub.publishAsync('rap/t', '', { qos: 1, retain: true })
  })

  it('[MQTT-3.3.1-9..11] Retain Handling 0, 1 and 2', async () => {
    const pub = await v5()
    await pub.publishAsync('rh/t', 'kept', { qos: 1, retain: true })
    const counts: number[] = []
    for (const rh of [0, 1, 2] as const) {
      const c = await v5()
      const inbox = collectMessages(c)
      await c.subscribeAsync('rh/t', { qos: 1, rh })
      await c.subscribeAsync('rh/t', { qos: 1, rh }) // a second, identical subscribe
      await sleep(200)
      counts.push(inbox.messages.length)
    }
    expect(counts).toEqual([2, 1, 0])
    await pub.publishAsync('rh/t', '', { qos: 1, retain: true })
  })

  it('[MQTT-3.2.2-...] does not deny Subscription Identifiers in CONNACK (absent means available)', async () => {
    const c = pool.raw(running.url, { protocolVersion: 5 })
    const connack = await new Promise<{ properties?: Record<string, unknown> }>((resolve) => c.once('connect', resolve))
    expect(connack.properties?.subscriptionIdentifiersAvailable).not.toBe(false)
  })
})
