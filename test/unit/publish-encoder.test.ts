import mqttPacket from 'mqtt-packet'
import { describe, expect, test } from 'vitest'
import { createPublishEncoder, encodePublish, ENCODE_PAYLOAD_MAX, type OutgoingPublish } from '../../src/mqtt/publish-encoder.js'

const generate = (packet: OutgoingPublish, protocolVersion: number) => mqttPacket.generate(packet as mqttPacket.Packet, { protocolVersion })

// Every combination that matters for the layout: topic and payload sizes around the
// remaining-length byte boundaries, multi-byte UTF-8, QoS, flags, packet ids, versions.
const topics = ['a', 'sensors/dev-1/temp', 'é/ü/€/𝄞', 'x'.repeat(300), 'y'.repeat(20_000)]
const payloadSizes = [0, 1, 64, 121, 122, 127, 128, 200, 16_380, ENCODE_PAYLOAD_MAX]
const cases: Array<[OutgoingPublish, number]> = []
for (const protocolVersion of [3, 4, 5])
  for (const topic of topics)
    for (const size of payloadSizes)
      for (const qos of [0, 1, 2])
        for (const [dup, retain] of [[false, false], [true, false], [false, true], [true, true]] as const) {
          if (size > ENCODE_PAYLOAD_MAX) continue
          const packet: OutgoingPublish = { cmd: 'publish', topic, payload: Buffer.alloc(size, size & 0xff), qos, dup, retain }
          if (qos > 0) packet.messageId = (size * 7 + topic.length) % 65536
          cases.push([packet, protocolVersion])
        }

describe('encodePublish', () => {
  test(`writes what mqtt-packet writes (${cases.length} packets)`, () => {
    const differing = cases
      .filter(([packet, version]) => !encodePublish(packet, version)?.equals(generate(packet, version)))
      .map(([packet, version]) => `v${version} qos ${packet.qos} topic ${(packet.topic as string).length} chars, payload ${(packet.payload as Buffer).length} bytes`)
    expect(differing).toEqual([])
  })

  test('empty MQTT 5 properties are no properties', () => {
    for (const properties of [{}, { topicAlias: undefined }]) {
      const packet: OutgoingPublish = { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, messageId: 9, properties }
      expect(encodePublish(packet, 5)).toEqual(generate(packet, 5))
    }
  })

  test('leaves to mqtt-packet what it does not encode', () => {
    const base: OutgoingPublish = { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 0 }
    expect(encodePublish({ ...base, properties: { topicAlias: 3 } }, 5)).toBeUndefined()
    expect(encodePublish({ ...base, payload: 'text' }, 4)).toBeUndefined()
    expect(encodePublish({ ...base, topic: Buffer.from('t') }, 4)).toBeUndefined()
    expect(encodePublish({ ...base, payload: Buffer.alloc(ENCODE_PAYLOAD_MAX + 1) }, 4)).toBeUndefined()
    expect(encodePublish({ ...base, qos: 1 }, 4)).toBeUndefined() // no packet id: mqtt-packet refuses it
    expect(encodePublish({ ...base, qos: 1, messageId: 70_000 }, 4)).toBeUndefined()
    expect(encodePublish({ cmd: 'puback', messageId: 1 }, 4)).toBeUndefined()
    // properties on a 3.1.1 packet are not written at all, as mqtt-packet does
    expect(encodePublish({ ...base, properties: { topicAlias: 3 } }, 4)).toEqual(generate(base, 4))
  })
})

describe('createPublishEncoder', () => {
  test('reuses the bytes of a QoS 0 copy of the same message, and only then', () => {
    const encode = createPublishEncoder()
    const topic = 'fan/out'
    const payload = Buffer.from('same')
    const first = encode({ cmd: 'publish', topic, payload, qos: 0 }, 4)
    expect(encode({ cmd: 'publish', topic, payload, qos: 0 }, 4)).toBe(first)
    expect(encode({ cmd: 'publish', topic, payload, qos: 0 }, 3)).toBe(first) // 3.1 and 3.1.1 bytes are the same
    expect(encode({ cmd: 'publish', topic, payload, qos: 0, retain: true }, 4)).not.toBe(first)
    expect(encode({ cmd: 'publish', topic, payload: Buffer.from('same'), qos: 0 }, 4)).toEqual(first)
    const v5 = encode({ cmd: 'publish', topic, payload, qos: 0 }, 5)
    expect(v5).toEqual(generate({ cmd: 'publish', topic, payload, qos: 0 }, 5))
    expect(encode({ cmd: 'publish', topic, payload, qos: 0, properties: { subscriptionIdentifier: 4 } }, 5)).toBeUndefined()
    expect(encode({ cmd: 'publish', topic, payload, qos: 0 }, 5)).toBe(v5)
    // an acknowledgement written between two copies leaves the shared bytes alone
    expect(encode({ cmd: 'puback', messageId: 1 }, 4)).toBeUndefined()
    expect(encode({ cmd: 'publish', topic, payload, qos: 0 }, 5)).toBe(v5)
    const qos1 = encode({ cmd: 'publish', topic, payload, qos: 1, messageId: 2 }, 4)
    expect(qos1).toEqual(generate({ cmd: 'publish', topic, payload, qos: 1, messageId: 2 }, 4))
    expect(encode({ cmd: 'publish', topic, payload, qos: 1, messageId: 3 }, 4)).not.toEqual(qos1)
  })
})
