// Per-source (device + publish stream) accounting of what observers received: a growable bitset
// of seen sequence numbers answers "duplicate?" in O(1), and the highest seq seen so far answers
// "out of order?". Loss is computed later against what the devices report as sent.

export type Arrival = 'in-order' | 'out-of-order' | 'duplicate'

export interface TrackerSnapshot {
  /** Unique messages per source, as a bitset where bit n is seq n. */
  sources: Map<string, Uint8Array>
  received: number
  unique: number
  duplicates: number
  outOfOrder: number
}

interface SourceState {
  bits: Uint8Array
  highest: number
}

export function sourceKey(deviceId: string, stream: number): string {
  return `${deviceId}/${stream}`
}

export function hasBit(bits: Uint8Array, n: number): boolean {
  const byte = n >>> 3
  return byte < bits.length && ((bits[byte] as number) & (1 << (n & 7))) !== 0
}

function withBit(bits: Uint8Array, n: number): Uint8Array {
  const byte = n >>> 3
  let out = bits
  if (byte >= bits.length) {
    // Double so a long run costs O(log n) reallocations per source.
    out = new Uint8Array(Math.max(byte + 1, bits.length * 2))
    out.set(bits)
  }
  out[byte] = (out[byte] as number) | (1 << (n & 7))
  return out
}

export interface SequenceTracker {
  record(source: string, seq: number): Arrival
  readonly received: number
  readonly unique: number
  readonly duplicates: number
  readonly outOfOrder: number
  snapshot(): TrackerSnapshot
}

export function createSequenceTracker(): SequenceTracker {
  const sources = new Map<string, SourceState>()
  let received = 0
  let unique = 0
  let duplicates = 0
  let outOfOrder = 0
  return {
    record(source, seq) {
      received++
      let state = sources.get(source)
      if (!state) {
        state = { bits: new Uint8Array(16), highest: 0 }
        sources.set(source, state)
      }
      if (hasBit(state.bits, seq)) {
        duplicates++
        return 'duplicate'
      }
      unique++
      state.bits = withBit(state.bits, seq)
      if (seq < state.highest) {
        outOfOrder++
        return 'out-of-order'
      }
      state.highest = seq
      return 'in-order'
    },
    get received() {
      return received
    },
    get unique() {
      return unique
    },
    get duplicates() {
      return duplicates
    },
    get outOfOrder() {
      return outOfOrder
    },
    snapshot() {
      return {
        sources: new Map([...sources].map(([key, state]) => [key, state.bits])),
        received,
        unique,
        duplicates,
        outOfOrder,
      }
    },
  }
}

/**
 * Merges snapshots of observers that shared one subscription (possibly in different workers):
 * a message seen by two members of the group counts as a duplicate. Out-of-order counts are
 * summed per member; MQTT does not order across members of a shared group anyway.
 */
export function mergeSnapshots(snapshots: readonly TrackerSnapshot[]): TrackerSnapshot {
  const sources = new Map<string, Uint8Array>()
  let received = 0
  let duplicates = 0
  let outOfOrder = 0
  for (const snap of snapshots) {
    received += snap.received
    duplicates += snap.duplicates
    outOfOrder += snap.outOfOrder
    for (const [key, bits] of snap.sources) {
      const existing = sources.get(key)
      if (!existing) {
        sources.set(key, bits.slice())
        continue
      }
      const merged = existing.length >= bits.length ? existing : (() => {
        const grown = new Uint8Array(bits.length)
        grown.set(existing)
        return grown
      })()
      for (let i = 0; i < bits.length; i++) {
        const overlap = (merged[i] as number) & (bits[i] as number)
        if (overlap !== 0) duplicates += popcount8(overlap)
        merged[i] = (merged[i] as number) | (bits[i] as number)
      }
      sources.set(key, merged)
    }
  }
  return { sources, received, unique: received - duplicates, duplicates, outOfOrder }
}

function popcount8(byte: number): number {
  let n = byte
  let count = 0
  while (n) {
    count += n & 1
    n >>>= 1
  }
  return count
}
