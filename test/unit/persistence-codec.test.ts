import { createRequire } from 'node:module'
import { serialize } from 'node:v8'
import { describe, expect, test } from 'vitest'
import { decodePacket, encodePacket, toStorable } from '../../src/persistence/packet-codec.js'

const require = createRequire(import.meta.url)
const AedesPacket = require('aedes-packet') as new (original: object, broker?: object) => Record<string, unknown>

const publish = (extra: object = {}) =>
  new AedesPacket({ cmd: 'publish', topic: 'devices/é/1', payload: Buffer.from('hello'), qos: 1, retain: true, dup: false, ...extra }, { id: 'broker-é', counter: 41 })

/** Same fields, same order, same values (undefined included). */
function expectSame(decoded: Record<string, unknown>, original: Record<string, unknown>): void {
  expect(Object.entries(decoded)).toStrictEqual(Object.entries(toStorable(original)))
}

describe('packet codec', () => {
  test('the packet an offline enqueue stores takes the compact form and comes back identical', () => {
    const packet = publish()
    const blob = encodePacket(packet)
    expect(blob[0]).toBe(0x01)
    expect(blob.length).toBeLessThan(serialize(toStorable(packet)).length)
    expectSame(decodePacket(blob), packet)
    expect(Buffer.isBuffer(decodePacket(blob).payload)).toBe(true)
  })

  test('every QoS and flag, an empty payload, a message expiry', () => {
    for (const qos of [0, 1, 2]) {
      for (const dup of [false, true]) {
        const packet = publish({ qos, dup, retain: !dup, payload: Buffer.alloc(0), messageExpiry: 1_700_000_000_123 })
        const blob = encodePacket(packet)
        expect(blob[0]).toBe(0x01)
        expectSame(decodePacket(blob), packet)
      }
    }
  })

  test('anything else (MQTT 5 properties, PUBREL, wills, subscriptions, string payloads) uses the v8 form', () => {
    const others: Array<Record<string, unknown>> = [
      publish({ properties: { contentType: 'text/plain' } }),
      { cmd: 'pubrel', messageId: 7 },
      { topic: 'will', payload: Buffer.from('bye'), qos: 1, retain: false, clientId: 'c', brokerId: 'b' },
      { topic: 'a/#', qos: 2, nl: true, rap: false, rh: 1 },
      { ...publish(), payload: 'text' },
      { ...publish(), messageId: 12 },
    ]
    for (const value of others) {
      const blob = encodePacket(value)
      expect(blob[0]).toBe(0xff)
      expectSame(decodePacket(blob), value)
    }
  })

  test('every Packet has the same fields in the same order, whatever its original had', () => {
    const bare = new AedesPacket({ topic: 't', qos: 0 }, { id: 'b', counter: 0 })
    const full = new AedesPacket({ topic: 't', qos: 1, clientId: 'c', nl: true, properties: {}, messageExpiry: 1 }, { id: 'b', counter: 0 })
    expect(Object.keys(bare)).toStrictEqual(Object.keys(full))
    expect(Object.keys(decodePacket(encodePacket(bare)))).toStrictEqual(Object.keys(bare))
  })

  test('packets stored by earlier releases still decode', () => {
    const packet = publish()
    expectSame(decodePacket(serialize(toStorable(packet))), packet)
    // the compact form flagged a messageId field (0x20), which their QoS > 0 Packets alone had
    const flagged = encodePacket(packet)
    flagged[1] = (flagged[1] as number) | 0x20
    expectSame(decodePacket(flagged), packet)
    // their QoS 0 Packet lacked the fields left undefined: the v8 form now, read back as it was
    const older = { cmd: 'publish', brokerId: 'b', brokerCounter: 3, topic: 't', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }
    expect(encodePacket(older)[0]).toBe(0xff)
    expectSame(decodePacket(encodePacket(older)), older)
  })
})
