import mqttPacket from 'mqtt-packet'
import { describe, expect, test } from 'vitest'
import { encodeAck, type OutgoingAck } from '../../src/mqtt/ack-encoder.js'

const generate = (packet: OutgoingAck, protocolVersion: number) => mqttPacket.generate(packet as mqttPacket.Packet, { protocolVersion })

// Every type, version, packet id edge and reason code (none, 0, others).
const cases: Array<[OutgoingAck, number]> = []
for (const protocolVersion of [3, 4, 5])
  for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'])
    for (const messageId of [0, 1, 255, 256, 4660, 65535])
      for (const reasonCode of [undefined, 0, 0x10, 0x80, 0x87, 0x92]) {
        const packet: OutgoingAck = { cmd, messageId }
        if (reasonCode !== undefined) packet.reasonCode = reasonCode
        cases.push([packet, protocolVersion])
      }

describe('encodeAck', () => {
  test(`writes what mqtt-packet writes (${cases.length} packets)`, () => {
    const differing = cases
      .filter(([packet, version]) => !encodeAck(packet, version)?.equals(generate(packet, version)))
      .map(([packet, version]) => `v${version} ${JSON.stringify(packet)}`)
    expect(differing).toEqual([])
  })

  test('leaves to mqtt-packet what it does not encode', () => {
    expect(encodeAck({ cmd: 'puback', messageId: 1, properties: { reasonString: 'no' } }, 5)).toBeUndefined()
    expect(encodeAck({ cmd: 'puback', messageId: 1, properties: {} }, 5)).toBeUndefined()
    expect(encodeAck({ cmd: 'suback', messageId: 1 }, 4)).toBeUndefined()
    expect(encodeAck({ cmd: 'publish', messageId: 1 }, 4)).toBeUndefined()
    for (const messageId of [undefined, -1, 65536, 1.5, '1']) expect(encodeAck({ cmd: 'puback', messageId }, 4)).toBeUndefined()
    expect(encodeAck({ cmd: 'puback', messageId: 1, reasonCode: 256 }, 5)).toBeUndefined()
  })

  test('a resent PUBREL keeps the flags 0010 (mqtt-packet throws on one marked DUP)', () => {
    const packet = { cmd: 'pubrel', messageId: 7, dup: true }
    expect(encodeAck(packet, 4)).toEqual(Buffer.from([0x62, 2, 0, 7]))
    expect(() => generate(packet, 4)).toThrow()
  })

  test('its bytes parse back to the packet', () => {
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    const parsed: mqttPacket.Packet[] = []
    parser.on('packet', (p: mqttPacket.Packet) => parsed.push(p))
    parser.parse(encodeAck({ cmd: 'pubrec', messageId: 513, reasonCode: 0x10 }, 5)!)
    parser.parse(encodeAck({ cmd: 'pubrel', messageId: 514, reasonCode: 0 }, 5)!)
    expect(parsed).toMatchObject([
      { cmd: 'pubrec', messageId: 513, reasonCode: 0x10 },
      { cmd: 'pubrel', messageId: 514 },
    ])
  })
})
