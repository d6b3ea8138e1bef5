// The measurement envelope every simulated message carries: which run and device sent it, its
// per-stream sequence number and its send time. JSON payloads carry it as top-level fields;
// binary payloads start with a fixed 24-byte header followed by the device id.
//
// Binary header (big-endian):
//   0-1 magic 0xD5 0x1A | 2 version (1) | 3 device id length | 4 stream | 5-7 reserved
//   8-15 send time, float64 epoch ms | 16-19 seq uint32 | 20-23 run uint32 | 24.. device id

export interface Envelope {
  run: number
  deviceId: string
  stream: number
  seq: number
  /** Send time in epoch milliseconds with sub-millisecond fraction. */
  ts: number
}

export const BINARY_MAGIC_0 = 0xd5
export const BINARY_MAGIC_1 = 0x1a
export const BINARY_VERSION = 1
export const BINARY_HEADER_SIZE = 24

/** Bytes a binary payload needs for this device id. */
export function binaryEnvelopeSize(deviceId: string): number {
  return BINARY_HEADER_SIZE + Buffer.byteLength(deviceId)
}

/** Writes the header + device id into `target` (which already holds the filler bytes). */
export function writeBinaryEnvelope(target: Buffer, envelope: Envelope, deviceIdBytes: Buffer): void {
  target[0] = BINARY_MAGIC_0
  target[1] = BINARY_MAGIC_1
  target[2] = BINARY_VERSION
  target[3] = deviceIdBytes.length
  target[4] = envelope.stream
  target[5] = 0
  target[6] = 0
  target[7] = 0
  target.writeDoubleBE(envelope.ts, 8)
  target.writeUInt32BE(envelope.seq >>> 0, 16)
  target.writeUInt32BE(envelope.run >>> 0, 20)
  deviceIdBytes.copy(target, BINARY_HEADER_SIZE)
}

function isInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value)
}

/**
 * Reads the envelope from a received payload; undefined for anything that is not a simulator
 * message (other publishers on the same broker), which observers count as "foreign".
 */
export function readEnvelope(payload: Buffer): Envelope | undefined {
  if (payload.length >= BINARY_HEADER_SIZE && payload[0] === BINARY_MAGIC_0 && payload[1] === BINARY_MAGIC_1) {
    if (payload[2] !== BINARY_VERSION) return undefined
    const idLength = payload[3] as number
    if (payload.length < BINARY_HEADER_SIZE + idLength) return undefined
    return {
      run: payload.readUInt32BE(20),
      deviceId: payload.toString('utf8', BINARY_HEADER_SIZE, BINARY_HEADER_SIZE + idLength),
      stream: payload[4] as number,
      seq: payload.readUInt32BE(16),
      ts: payload.readDoubleBE(8),
    }
  }
  if (payload[0] !== 0x7b /* "{" */) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(payload.toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined
  const o = parsed as Record<string, unknown>
  if (typeof o.deviceId !== 'string' || !isInteger(o.seq) || typeof o.ts !== 'number' || !isInteger(o.run)) return undefined
  return { run: o.run, deviceId: o.deviceId, stream: isInteger(o.stream) ? o.stream : 0, seq: o.seq, ts: o.ts }
}
