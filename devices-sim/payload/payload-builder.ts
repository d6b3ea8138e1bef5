// Builds the payload of each telemetry message: the measurement envelope plus generated sensor
// values (JSON), or a fixed-size binary blob with the envelope as a header.
import { binaryEnvelopeSize, writeBinaryEnvelope } from './envelope.js'
import { createGenerator } from './generators.js'
import type { JsonValue, ValueGenerator } from './generators.js'
import type { Rng } from './rng.js'
import type { PayloadSpec } from '../scenario/schema.js'

export interface PayloadContext {
  run: number
  deviceId: string
  profile: string
  stream: number
  intervalMs: number
  rng: Rng
}

export type PayloadBuilder = (seq: number, ts: number) => string | Buffer

export function createPayloadBuilder(spec: PayloadSpec, ctx: PayloadContext): PayloadBuilder {
  if (spec.format === 'binary') {
    const deviceIdBytes = Buffer.from(ctx.deviceId, 'utf8')
    const needed = binaryEnvelopeSize(ctx.deviceId)
    if (deviceIdBytes.length > 255 || spec.size < needed) {
      throw new RangeError(`binary payload size ${spec.size} is too small for device "${ctx.deviceId}" (needs at least ${needed} bytes)`)
    }
    // Filler is random once per device (seeded) so payloads do not compress to nothing.
    const template = Buffer.alloc(spec.size)
    for (let i = needed; i < spec.size; i++) template[i] = ctx.rng.int(256)
    return (seq, ts) => {
      // A fresh buffer per message: mqtt.js may still hold the previous one for a retransmit.
      const out = Buffer.allocUnsafe(spec.size)
      template.copy(out)
      writeBinaryEnvelope(out, { run: ctx.run, deviceId: ctx.deviceId, stream: ctx.stream, seq, ts }, deviceIdBytes)
      return out
    }
  }
  const fields: Array<[string, ValueGenerator]> = Object.entries(spec.fields).map(([name, gen]) => [name, createGenerator(gen, ctx.rng, ctx.intervalMs)])
  return (seq, ts) => {
    const body: Record<string, JsonValue> = { deviceId: ctx.deviceId, profile: ctx.profile, stream: ctx.stream, seq, ts, run: ctx.run }
    for (const [name, generator] of fields) body[name] = generator.next()
    return JSON.stringify(body)
  }
}
