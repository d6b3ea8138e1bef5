import { describe, expect, it } from 'vitest'
import { useBroker } from '../helpers/in-process-broker.js'
import { collectMessages, sleep } from '../helpers/mqtt-clients.js'
import { storeConfigs } from '../helpers/stores.js'

// §3.1.2.5 / §3.1.3.2: the Will Message of MQTT 5 clients.
describe.each(storeConfigs())('will messages ($name store)', ({ store }) => {
  const { running, pool } = useBroker(() => ({ store: store() }))

  const watch = async (topic: string) => {
    const watcher = await pool.connect(running.url, { protocolVersion: 5 })
    const inbox = collectMessages(watcher)
    await watcher.subscribeAsync(topic, { qos: 1 })
    return inbox
  }

  it('[MQTT-3.1.2-8] publishes the will with its properties when the socket drops', async () => {
    const inbox = await watch('will/props')
    const dying = await pool.connect(running.url, {
      protocolVersion: 5,
      will: {
        topic: 'will/props',
        payload: Buffer.from('offline'),
        qos: 1,
        retain: false,
        properties: {
          contentType: 'text/plain',
          payloadFormatIndicator: true,
          responseTopic: 'will/reply',
          correlationData: Buffer.from('cd'),
          userProperties: { device: 'd1' },
        },
      },
    })
    dying.stream.destroy()
    const [msg] = await inbox.waitFor(1)
    expect(msg?.payload.toString()).toBe('offline')
    expect(msg?.packet.properties).toMatchObject({
      contentType: 'text/plain',
      payloadFormatIndicator: true,
      responseTopic: 'will/reply',
      userProperties: { device: 'd1' },
    })
    expect(msg?.packet.properties?.correlationData?.toString()).toBe('cd')
  })

  it('publishes the will when the keep-alive times out', async () => {
    const inbox = await watch('will/keepalive')
    const silent = await pool.connect(running.url, {
      protocolVersion: 5,
      keepalive: 1,
      will: { topic: 'will/keepalive', payload: Buffer.from('timed out'), qos: 1, retain: false },
    })
    // stop the client's pings without closing the socket: the broker must notice within 1.5 x keep-alive
    ;(silent as unknown as { _shiftPingInterval?: () => void; pingTimer?: { clear(): void } }).pingTimer?.clear()
    silent.options.keepalive = 0
    const [msg] = await inbox.waitFor(1, 4000)
    expect(msg?.payload.toString()).toBe('timed out')
  })

  it('[MQTT-3.1.3-9] delays the will by the Will Delay Interval and does not forward that property', async () => {
    const inbox = await watch('will/delay')
    const started = Date.now()
    const dying = await pool.connect(running.url, {
      protocolVersion: 5,
      clientId: `delay-${Date.now()}`,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/delay', payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
    })
    dying.stream.destroy()
    const [msg] = await inbox.waitFor(1, 4000)
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
    expect((msg?.packet.properties as Record<string, unknown> | undefined)?.willDelayInterval).toBeUndefined()
  })

  it('[MQTT-3.1.3-9] a reconnect within the will delay cancels the will', async () => {
    const inbox = await watch('will/cancel')
    const clientId = `cancel-${Date.now()}`
    const options = {
      protocolVersion: 5 as const,
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/cancel', payload: Buffer.from('x'), qos: 1 as const, retain: false, properties: { willDelayInterval: 2 } },
    }
    const first = await pool.connect(running.url, options)
    first.stream.destroy()
    await sleep(300)
    await pool.connect(running.url, { ...options, will: undefined })
    await sleep(2500)
    expect(inbox.messages).toHaveLength(0)
  })

  it('[MQTT-3.1.2-10] the will is sent when the session ends, even before the will delay', async () => {
    const inbox = await watch('will/session-end')
    const dying = await pool.connect(running.url, {
      protocolVersion: 5,
      clientId: `short-${Date.now()}`,
      properties: { sessionExpiryInterval: 1 },
      will: { topic: 'will/session-end', payload: Buffer.from('end'), qos: 1, retain: false, properties: { willDelayInterval: 30 } },
    })
    dying.stream.destroy()
    const [msg] = await inbox.waitFor(1, 4000)
    expect(msg?.payload.toString()).toBe('end')
  })

  it('[MQTT-3.14.4-3] DISCONNECT with reason 0x04 publishes the will', async () => {
    const inbox = await watch('will/0x04')
    const leaving = await pool.connect(running.url, {
      protocolVersion: 5,
      will: { topic: 'will/0x04', payload: Buffer.from('asked'), qos: 1, retain: false },
    })
    await leaving.endAsync(false, { reasonCode: 0x04 })
    const [msg] = await inbox.waitFor(1)
    expect(msg?.payload.toString()).toBe('asked')
  })
})
