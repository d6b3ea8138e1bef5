import type { Packet } from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { useBroker } from '../helpers/in-process-broker.js'
import { sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'
import { storeConfigs } from '../helpers/stores.js'

type Publish = Packet & { cmd: 'publish'; messageId: number; payload: Buffer }

/** Blocks this process (and the broker in it) while sockets fill: their packets are read together. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until);
}

// [MQTT-4.6.0-6] Every topic is an Ordered Topic: a subscriber gets one publisher's messages in
// the order they were published. On the SQLite store a persistent session's copy takes one of two
// paths: held in memory until its PUBACK (ackWindowMs), or written. Both must come out in order.
describe.each(storeConfigs())('delivery order to a persistent session ($name store)', ({ store }) => {
  const { running } = useBroker(() => ({ store: store() }))
  const raws: RawClient[] = []
  afterEach(() => {
    for (const r of raws.splice(0)) r.close()
  })
  async function rawV5(clientId: string, extra: Record<string, unknown> = {}): Promise<RawClient> {
    const client = await rawConnect(running.port, 5)
    raws.push(client)
    client.send(connectPacket(clientId, { protocolVersion: 5, ...extra }))
    await client.next((p) => p.cmd === 'connack')
    return client
  }

  it('[MQTT-4.6.0-6] sends a written copy before a newer held one', async () => {
    const sub = await rawV5('order-sub', { clean: false, properties: { receiveMaximum: 2, sessionExpiryInterval: 60 } })
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'order/t', qos: 1 }] })
    await sub.next((p) => p.cmd === 'suback')
    const publishes = (): Publish[] => sub.received.filter((p): p is Publish => p.cmd === 'publish')
    const pub = await rawV5('order-pub')
    const publish = (messageId: number): void => pub.send({ cmd: 'publish', topic: 'order/t', payload: `m${messageId}`, qos: 1, messageId, dup: false, retain: false })

    // m1 and m2 take the subscriber's two slots; m3 waits for one (on SQLite it is written,
    // since it did not go out)
    for (const id of [1, 2, 3]) publish(id)
    await pub.next((p) => p.cmd === 'puback' && p.messageId === 3)
    expect(publishes().map((p) => p.payload.toString())).toEqual(['m1', 'm2'])
    // In one turn of the broker: the PUBACKs of m1 and m2 let the written m3 go and free a slot,
    // then m4 comes, finds that slot and (on SQLite) is held: it goes out before it is written.
    sub.sendTogether(publishes().map((p) => ({ cmd: 'puback', messageId: p.messageId })))
    publish(4)
    blockEventLoop(50)
    await sub.next((p) => p.cmd === 'publish' && p.payload.toString() === 'm4')
    await sleep(100)
    expect(publishes().map((p) => p.payload.toString())).toEqual(['m1', 'm2', 'm3', 'm4'])
  })
})
