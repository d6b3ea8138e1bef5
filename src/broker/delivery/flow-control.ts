import type { AedesPublishPacket, Client } from 'aedes'
import { Readable } from 'node:stream'

/** Reason codes at or above this value end a QoS 2 flow at PUBREC (§4.3.3). */
const REASON_CODE_ERROR = 0x80

type Send = (packet: AedesPublishPacket, callback: () => void) => void

/**
 * [MQTT-3.3.4-9] Outbound Receive Maximum: at most `limit` QoS 1/2 PUBLISH packets wait for
 * PUBACK/PUBCOMP at a client; the rest wait here (and, for a persistent session, in its store
 * queue too, so nothing waits only in memory that the session must not lose). A slot frees when
 * the client acknowledges, or refuses at PUBREC.
 */
export class OutboundWindow {
  #inflight = 0
  readonly #pending: Array<{ packet: AedesPublishPacket; send: Send }> = []
  readonly #waiters: Array<(granted: boolean) => void> = []
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
   * Sends now if a slot is free, else holds the packet. The caller's callback runs at once
   * either way: a full window must not hold up the publisher (or every other subscriber).
   */
  submit(packet: AedesPublishPacket, send: Send, callback: () => void): void {
    if (this.#closed) return void setImmediate(callback)
    if (this.#inflight < this.limit()) {
      this.#inflight++
      send(packet, callback)
      return
    }
    if (this.maxPending > 0 && this.#pending.length >= this.maxPending) {
      this.#pending.shift()
      this.onOverflow()
    }
    this.#pending.push({ packet, send })
    setImmediate(callback)
  }

  /** Takes a slot for a packet sent by someone else (the queue drain at reconnect). */
  acquire(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false)
    if (this.#inflight < this.limit()) {
      this.#inflight++
      return Promise.resolve(true)
    }
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** An acknowledgement arrived: free its slot and hand it to whoever waits longest. */
  release(): void {
    if (this.#inflight > 0) this.#inflight--
    while (!this.#closed && this.#inflight < this.limit()) {
      const waiter = this.#waiters.shift()
      if (waiter) {
        this.#inflight++
        waiter(true)
        continue
      }
      const next = this.#pending.shift()
      if (!next) return
      this.#inflight++
      next.send(next.packet, noop)
    }
  }

  /** The connection is gone: drop what waits (a persistent session still has it in its queue). */
  close(): void {
    this.#closed = true
    this.#pending.length = 0
    for (const waiter of this.#waiters.splice(0)) waiter(false)
  }
}

const windows = new WeakMap<Client, OutboundWindow>()

export function outboundWindow(client: Client): OutboundWindow | undefined {
  return windows.get(client)
}

interface ClientWithParser {
  _parser: { on(event: 'packet', listener: (packet: { cmd: string; reasonCode?: number }) => void): void }
  receiveMaximum?: number
  version: number | null
  on(event: 'connected', listener: () => void): void
  conn: { once(event: 'close', listener: () => void): void }
}

export interface FlowControlOptions {
  /** broker-wide cap on unacknowledged outbound QoS 1/2 per client (0 = none beyond the client's) */
  maxInflight: number
  /** messages held per client while its window is full (0 = unlimited) */
  maxPending: number
  onOverflow: () => void
}

/** Installs the outbound window on a new client. Run before the delivery planner wraps it. */
export function installOutboundWindow(client: Client, options: FlowControlOptions): OutboundWindow {
  const c = client as unknown as ClientWithParser
  const limit = (): number => {
    const own = c.version === 5 ? (c.receiveMaximum ?? 65535) : Infinity
    return options.maxInflight > 0 ? Math.min(own, options.maxInflight) : own
  }
  const window = new OutboundWindow(limit, options.maxPending, options.onOverflow)
  windows.set(client, window)
  c._parser.on('packet', (packet) => {
    if (packet.cmd === 'puback' || packet.cmd === 'pubcomp') window.release()
    else if (packet.cmd === 'pubrec' && (packet.reasonCode ?? 0) >= REASON_CODE_ERROR) window.release()
  })
  c.conn.once('close', () => window.close())
  return window
}

/**
 * The queue drained at reconnect is written by aedes directly, not through the delivery
 * functions: pace it through the same window, one slot per PUBLISH or PUBREL it holds.
 */
export function pacedOutgoingStream(client: Client, source: Readable): Readable {
  const window = windows.get(client)
  // A closed client's queue is being emptied (session wipe), not sent: no pacing.
  if (!window || (client as unknown as { closed: boolean }).closed) return source
  return Readable.from(
    (async function* paced() {
      for await (const record of source as AsyncIterable<{ cmd?: string; qos?: number }>) {
        if (record.cmd === 'pubrel' || (record.qos ?? 0) > 0) {
          if (!(await window.acquire())) {
            source.destroy()
            return
          }
        }
        yield record
      }
    })(),
  )
}

function noop(): void {}
