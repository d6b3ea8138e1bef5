import type { AedesPublishPacket, Client } from 'aedes'
import { Readable } from 'node:stream'
import { tapInbound } from '../packet-taps.js'
import { clientInternals } from '../aedes-internals.js'

/** Reason codes at or above this value end a QoS 2 flow at PUBREC (§4.3.3). */
const REASON_CODE_ERROR = 0x80

type Send = (packet: AedesPublishPacket, callback: () => void) => void

interface Pending {
  packet: AedesPublishPacket
  send: Send
  /** QoS 1/2: takes a slot of the window */
  counts: boolean
}

/**
 * Everything mqlite sends a client goes through its window:
 * - [MQTT-3.3.4-9] Receive Maximum: at most `limit` QoS 1/2 PUBLISH packets wait for
 *   PUBACK/PUBCOMP; the rest wait here (for a persistent session they are in its store queue
 *   too). A slot frees when the client acknowledges, or refuses at PUBREC.
 * - The gate: until the session's stored queue has been drained after CONNECT, live messages
 *   wait, so the client gets its queue first, in order, and never a message both from the queue
 *   and live (which would reach it twice, under two packet ids). aedes starts routing live
 *   messages to a resuming session before its CONNACK and its queue drain.
 */
export class OutboundWindow {
  #inflight = 0
  #gated = true
  #pending: Pending[] = []
  readonly #waiters: Array<(granted: boolean) => void> = []
  /** broker id + counter of the messages the queue drain sent, while the gate is closed */
  #drained: Set<string> | undefined = new Set()
  #closed = false

  constructor(
    private readonly limit: () => number,
    private readonly maxPending: number,
    private readonly onOverflow: () => void,
  ) {}

  get inflight(): number {
    return this.#inflight
  }

  /** No free slot: a new QoS 1/2 message would have to wait. */
  get full(): boolean {
    return this.#inflight >= this.limit()
  }

  get pending(): number {
    return this.#pending.length
  }

  /**
   * Sends now if the gate is open and (for QoS 1/2) a slot is free, else holds the packet. The
   * caller's callback runs at once either way: a full window must not hold up the publisher.
   */
  submit(packet: AedesPublishPacket, send: Send, callback: () => void, counts = true): void {
    if (this.#closed) return void setImmediate(callback)
    if (!this.#gated && this.#pending.length === 0) {
      if (!counts) return send(packet, callback)
      if (this.#inflight < this.limit()) {
        this.#inflight++
        return send(packet, callback)
      }
    }
    if (this.maxPending > 0 && this.#pending.length >= this.maxPending) {
      this.#pending.shift()
      this.onOverflow()
    }
    this.#pending.push({ packet, send, counts })
    setImmediate(callback)
  }

  /** The queue drain takes a slot for a record it sends; false once the connection is gone. */
  acquire(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false)
    if (this.#inflight < this.limit()) {
      this.#inflight++
      return Promise.resolve(true)
    }
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** The queue drain sends this record: remember it so the live copy, if any, is skipped. */
  claimForDrain(record: { brokerId?: string | null; brokerCounter?: number }): boolean {
    if (!record.brokerId || !this.#drained) return true
    const key = `${record.brokerId}:${record.brokerCounter}`
    if (this.#drained.has(key)) return false
    this.#drained.add(key)
    return true
  }

  /** The stored queue has been sent: let live messages through, minus those it contained. */
  open(): void {
    if (!this.#gated) return
    this.#gated = false
    const drained = this.#drained
    this.#drained = undefined
    if (drained && drained.size > 0) {
      this.#pending = this.#pending.filter(
        ({ packet }) => !(packet.brokerId && drained.has(`${packet.brokerId}:${packet.brokerCounter}`)),
      )
    }
    this.#pump()
  }

  /** An acknowledgement arrived: free its slot for whoever waits longest. */
  release(): void {
    if (this.#inflight > 0) this.#inflight--
    while (!this.#closed && this.#inflight < this.limit()) {
      const waiter = this.#waiters.shift()
      if (!waiter) break
      this.#inflight++
      waiter(true)
    }
    this.#pump()
  }

  /** The connection is gone: drop what waits (a persistent session still has it in its queue). */
  close(): void {
    this.#closed = true
    this.#pending = []
    for (const waiter of this.#waiters.splice(0)) waiter(false)
  }

  /** Sends held packets in order while the gate is open and slots are free. */
  #pump(): void {
    while (!this.#closed && !this.#gated && this.#pending.length > 0) {
      const head = this.#pending[0]!
      if (head.counts) {
        if (this.#inflight >= this.limit()) return
        this.#inflight++
      }
      this.#pending.shift()
      head.send(head.packet, noop)
    }
  }
}

/** A record of a session's stored queue, as the drain reads it. */
interface DrainRecord {
  cmd?: string
  topic?: string
  qos?: number
  brokerId?: string
  brokerCounter?: number
  /** absolute expiry, ms since the epoch */
  messageExpiry?: number
}

const windows = new WeakMap<Client, OutboundWindow>()

export function outboundWindow(client: Client): OutboundWindow | undefined {
  return windows.get(client)
}

export interface FlowControlOptions {
  /** broker-wide cap on unacknowledged outbound QoS 1/2 per client (0 = none beyond the client's) */
  maxInflight: number
  /** messages held per client while its window is full or gated (0 = unlimited) */
  maxPending: number
  onOverflow: () => void
}

/** Installs the outbound window on a new client. Run before the delivery planner wraps it. */
export function installOutboundWindow(client: Client, options: FlowControlOptions): OutboundWindow {
  const c = clientInternals(client)
  const limit = (): number => {
    const own = c.version === 5 ? (c.receiveMaximum ?? 65535) : Infinity
    return options.maxInflight > 0 ? Math.min(own, options.maxInflight) : own
  }
  const window = new OutboundWindow(limit, options.maxPending, options.onOverflow)
  windows.set(client, window)
  tapInbound(client, (packet) => {
    if (packet.cmd === 'puback' || packet.cmd === 'pubcomp') window.release()
    else if (packet.cmd === 'pubrec' && ((packet.reasonCode as number | undefined) ?? 0) >= REASON_CODE_ERROR) window.release()
  })
  c.conn.once('close', () => window.close())
  return window
}

/**
 * The queue drained after CONNECT is written by aedes directly, not through the delivery
 * functions: pace it through the same window, one slot per PUBLISH or PUBREL, and open the gate
 * for live messages when it ends.
 */
export function pacedOutgoingStream(
  client: Client,
  source: Readable,
  canReceive?: (client: Client, topic: string) => boolean,
): Readable {
  const window = windows.get(client)
  const c = clientInternals(client)
  // A closed client's queue is being emptied (session wipe), not sent: no pacing.
  if (!window || c.closed) return source
  // What aedes drops from the drain instead of sending (a session that starts clean, an expired
  // or no longer readable message) takes no slot: no acknowledgement would ever free it.
  const dropped = (record: DrainRecord): boolean =>
    c.clean ||
    c._cleanStart === true ||
    (record.messageExpiry !== undefined && record.messageExpiry <= Date.now()) ||
    (canReceive !== undefined && record.topic !== undefined && !canReceive(client, record.topic))
  return Readable.from(
    (async function* paced() {
      try {
        for await (const record of source as AsyncIterable<DrainRecord>) {
          if (record.cmd !== 'pubrel' && !window.claimForDrain(record)) continue
          if (record.cmd === 'pubrel' || ((record.qos ?? 0) > 0 && !dropped(record))) {
            if (!(await window.acquire())) {
              source.destroy()
              return
            }
          }
          yield record
        }
      } finally {
        window.open()
      }
    })(),
  )
}

function noop(): void {}
