import mqttPacket from 'mqtt-packet'
import { describe, expect, it } from 'vitest'

// The patched mqtt-packet parser reads header bytes, numbers and strings in place when they lie in
// the first chunk of its buffer list, and through bl otherwise; it consumes the header byte with
// the length. Every split of a stream into chunks must parse to the same packets.

type Packet = mqttPacket.Packet

const topicOf = (n: number) => `sensors/${'x'.repeat(n)}/temp`

function packets(protocolVersion: 4 | 5): Packet[] {
  const v5 = protocolVersion === 5
  return [
    { cmd: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, dup: false, retain: false },
    { cmd: 'publish', topic: topicOf(40), payload: Buffer.alloc(300, 7), qos: 1, messageId: 258, dup: true, retain: true },
    // a remaining length of three bytes, a topic in UTF-8 with multi-byte characters
    { cmd: 'publish', topic: 'température/°C', payload: Buffer.alloc(17_000, 3), qos: 2, messageId: 65535, dup: false, retain: false },
    { cmd: 'puback', messageId: 513, ...(v5 ? { reasonCode: 0x10 } : {}) },
    { cmd: 'pingreq' },
    { cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: 'a/#', qos: 1 }] },
    {
      cmd: 'publish', topic: 'r/s', payload: Buffer.from('{}'), qos: 1, messageId: 1, dup: false, retain: false,
      ...(v5 ? { properties: { contentType: 'application/json', userProperties: { k: 'v' }, messageExpiryInterval: 60 } } : {}),
    },
    { cmd: 'pubrel', messageId: 77 },
  ] as Packet[]
}

function parseChunks(protocolVersion: 4 | 5, chunks: Buffer[]): Packet[] {
  const parser = mqttPacket.parser({ protocolVersion })
  const out: Packet[] = []
  const errors: Error[] = []
  parser.on('packet', (p: Packet) => out.push(p))
  parser.on('error', (e: Error) => errors.push(e))
  for (const chunk of chunks) parser.parse(chunk)
  expect(errors).toEqual([])
  return out
}

/** The packets as sent, payloads compared by equals() (a deep match of 17 KB is slow). */
function expectSame(parsed: Packet[], sent: Packet[]): void {
  const withoutPayload = (p: Packet) => ({ ...p, payload: undefined })
  expect(parsed).toHaveLength(sent.length)
  parsed.forEach((p, i) => {
    const expected = sent[i] as Packet & { payload?: Buffer }
    expect(withoutPayload(p)).toMatchObject(withoutPayload(expected))
    if (expected.payload) expect((p as { payload: Buffer }).payload.equals(expected.payload)).toBe(true)
  })
}

describe.each([4, 5] as const)('mqtt-packet parser (patched), protocol version %i', (protocolVersion) => {
  const sent = packets(protocolVersion)
  const stream = Buffer.concat(sent.map((p) => mqttPacket.generate(p, { protocolVersion })))

  it('parses a stream that arrives in one chunk', () => {
    expectSame(parseChunks(protocolVersion, [stream]), sent)
  })

  it('parses the stream split in two at every byte of its first 600 and last 100', () => {
    const at = [...Array.from({ length: 600 }, (_, i) => i + 1), ...Array.from({ length: 100 }, (_, i) => stream.length - 100 + i)]
    for (const k of at) expectSame(parseChunks(protocolVersion, [stream.subarray(0, k), stream.subarray(k)]), sent)
  })

  it('parses the stream fed one byte at a time', () => {
    const bytes = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1))
    expectSame(parseChunks(protocolVersion, bytes), sent)
  })

  it('parses the stream in chunks of every size from 2 to 64 bytes', () => {
    for (let size = 2; size <= 64; size++) {
      const chunks: Buffer[] = []
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size))
      expectSame(parseChunks(protocolVersion, chunks), sent)
    }
  })
})

describe('mqtt-packet parser (patched), errors', () => {
  it('still refuses a remaining length of more than four bytes', () => {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const errors: Error[] = []
    parser.on('error', (e: Error) => errors.push(e))
    parser.parse(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))
    expect(errors.map((e) => e.message)).toEqual(['Invalid variable byte integer'])
  })

  it('still refuses reserved header flags', () => {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const errors: Error[] = []
    parser.on('error', (e: Error) => errors.push(e))
    parser.parse(Buffer.from([0x62, 0x02, 0x00, 0x01])) // PUBREL must have flags 0010
    parser.parse(Buffer.from([0x63, 0x02, 0x00, 0x01]))
    expect(errors).toHaveLength(1)
  })
})

describe('mqtt-packet parser (patched), direct listener', () => {
  it('hands each packet to onPacket, with the parser as this, instead of emitting it', () => {
    const sent = packets(4)
    const parser = mqttPacket.parser({ protocolVersion: 4 }) as ReturnType<typeof mqttPacket.parser> & { onPacket?: (this: unknown, p: Packet) => void }
    const direct: Packet[] = []
    const emitted: Packet[] = []
    const receivers = new Set<unknown>()
    parser.on('packet', (p: Packet) => emitted.push(p))
    parser.onPacket = function (this: unknown, p: Packet) {
      receivers.add(this)
      direct.push(p)
    }
    parser.parse(Buffer.concat(sent.map((p) => mqttPacket.generate(p, { protocolVersion: 4 }))))
    expectSame(direct, sent)
    expect(emitted).toEqual([])
    expect([...receivers]).toEqual([parser])
    // without it, the event again
    parser.onPacket = undefined
    parser.parse(mqttPacket.generate({ cmd: 'pingreq' }))
    expect(emitted.map((p) => p.cmd)).toEqual(['pingreq'])
  })
})
