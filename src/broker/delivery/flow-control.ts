import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import { Readable } from 'node:stream'
import { tapInbound } from '../packet-taps.js'
import { clientInternals, type ClientInternals } from '../aedes-internals.js'
import { onClientCreated } from '../client-setup.js'

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
  // Allocated when first needed: most connections never hold a packet or wait for a slot.
  #pending: Pending[] | undefined
  #waiters: Array<(granted: boolean) => void> | undefined
  /** broker id -> counters of the messages the queue drain sent, while the gate is closed */
  #drained: Map<string, Set<number>> | undefined
  #closed = false

  constructor(
    private readonly client: ClientInternals,
    private readonly options: FlowControlOptions,
  ) {}

  /** Unacknowledged QoS 1/2 PUBLISH packets allowed: the client's Receive Maximum, capped by the broker's. */
  limit(): number {
    const c = this.client
    const own = c.version === 5 ? (c.receiveMaximum ?? 65535) : Infinity
    return this.options.maxInflight > 0 ? Math.min(own, this.options.maxInflight) : own
  }

  /** No free slot: a new QoS 1/2 message would have to wait. */
  get full(): boolean {
    return this.#inflight >= this.limit()
  }

  /**
   * Sends now if the gate is open and (for QoS 1/2) a slot is free, else holds the packet. The
   * caller's callback runs at once either way: a full window must not hold up the publisher.
   */
  submit(packet: AedesPublishPacket, send: Send, callback: () => void, counts = true): void {
    if (this.#closed) return void setImmediate(callback)
    if (!this.#gated && (this.#pending === undefined || this.#pending.length === 0)) {
      if (!counts) return send(packet, callback)
      if (this.#inflight < this.limit()) {
        this.#inflight++
        return send(packet, callback)
      }
    }
    const pending = (this.#pending ??= [])
    const { maxPending } = this.options
    if (maxPending > 0 && pending.length >= maxPending) {
      pending.shift()
      this.options.onOverflow()
    }
    pending.push({ packet, send, counts })
    setImmediate(callback)
  }

  /** The queue drain takes a slot for a record it sends; false once the connection is gone. */
  acquire(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false)
    if (this.#inflight < this.limit()) {
      this.#inflight++
      return Promise.resolve(true)
    }
    return new Promise((resolve) => (this.#waiters ??= []).push(resolve))
  }

  /** The queue drain sends this record: remember it so the live copy, if any, is skipped. */
  claimForDrain(record: { brokerId?: string | null; brokerCounter?: number }): boolean {
    const { brokerId, brokerCounter } = record
    if (!brokerId || brokerCounter === undefined || !this.#gated) return true
    // by broker id, then counter: no string built per record of a long queue
    const byBroker = (this.#drained ??= new Map())
    let counters = byBroker.get(brokerId)
    if (counters === undefined) byBroker.set(brokerId, (counters = new Set()))
    if (counters.has(brokerCounter)) return false
    counters.add(brokerCounter)
    return true
  }

  /**
   * The stored queue has been sent: let live messages through, minus those it contained. A live
   * copy of one of them can still come later (in a cluster it crosses the Redis bus after the
   * store saw the message): the client's duplicate marks (aedes's per-broker high-water counter)
   * are raised past every message the queue sent, so such a copy is skipped, not sent again
   * under a second packet id. Older messages of those brokers were in the queue too.
   */
  open(): void {
    if (!this.#gated) return
    this.#gated = false
    const drained = this.#drained
    this.#drained = undefined
    if (drained && drained.size > 0) {
      if (this.#pending) {
        this.#pending = this.#pending.filter(
          ({ packet }) => !(packet.brokerId && drained.get(packet.brokerId)?.has(packet.brokerCounter)),
        )
      }
      const marks = this.client.duplicates
      for (const [brokerId, counters] of drained) {
        let mark = marks[brokerId] ?? 0
        for (const counter of counters) if (counter > mark) mark = counter
        marks[brokerId] = mark
      }
    }
    this.#pump()
  }

  /** An acknowledgement arrived: free its slot for whoever waits longest. */
  release(): void {
    if (this.#inflight > 0) this.#inflight--
    while (!this.#closed && this.#inflight < this.limit()) {
      const waiter = this.#waiters?.shift()
      if (!waiter) break
      this.#inflight++
      waiter(true)
    }
    this.#pump()
  }

  /** The connection is gone: drop what waits (a persistent session still has it in its queue). */
  close(): void {
    this.#closed = true
    this.#pending = undefined
    const waiters = this.#waiters
    this.#waiters = undefined
    if (waiters) for (const waiter of waiters) waiter(false)
  }

  /** Sends held packets in order while the gate is open and slots are free. */
  #pump(): void {
    const pending = this.#pending
    if (pending === undefined) return
    while (!this.#closed && !this.#gated && pending.length > 0) {
      const head = pending[0]!
      if (head.counts) {
        if (this.#inflight >= this.limit()) return
        this.#inflight++
      }
      pending.shift()
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

/**
 * Gives every new client of the broker its outbound window. Run before the delivery planner
 * wraps the clients. Per connection this costs the window object alone: the acknowledgement tap
 * and the close listener are shared.
 */
export function installOutboundWindows(broker: Aedes, options: FlowControlOptions): void {
  // The gate opens once aedes has written the whole stored queue (its last connect step ends
  // with clientReady), not when the store's stream ends: up to a batch of queued messages can
  // still be between their store update and their write then, and live ones must come after them.
  broker.on('clientReady', (client) => windows.get(client)?.open())
  tapInbound(broker, (packet, client) => {
    if (packet.cmd === 'puback' || packet.cmd === 'pubcomp') windows.get(client)?.release()
    else if (packet.cmd === 'pubrec' && ((packet.reasonCode as number | undefined) ?? 0) >= REASON_CODE_ERROR) windows.get(client)?.release()
  })
  onClientCreated(broker, (client) => {
    const c = clientInternals(client)
    windows.set(client, new OutboundWindow(c, options))
    c.conn.on('close', closeWindow)
  })
}

/** A connection's 'close' listener (once per connection); aedes links the stream to its client. */
function closeWindow(this: { client?: Client }): void {
  if (this.client) windows.get(this.client)?.close()
}

/**
 * The queue drained after CONNECT is written by aedes directly, not through the delivery
 * functions: pace it through the same window, one slot per PUBLISH or PUBREL, and the gate for
 * live messages opens once aedes has written all of it.
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
  const takesSlot = (record: DrainRecord): boolean => record.cmd === 'pubrel' || ((record.qos ?? 0) > 0 && !dropped(record))
  return new PacedDrain(source, window, takesSlot)
}

/**
 * The paced drain as a small Readable pulling from the store's stream: a record the window has
 * already seen is skipped, one that takes a slot waits for it, and when the store's stream ends
 * (or a slot is refused: the connection is gone) this stream ends; the gate opens when aedes has
 * written what it read (clientReady), or at once if this stream is destroyed first. It runs at
 * every CONNECT, so it is not an async generator over the source (Readable.from + for await):
 * those promises and iterators kept each connect's objects alive across many ticks, and under a
 * burst of connections the heap promoted them, to be collected much later.
 */
class PacedDrain extends Readable {
  readonly #source: Readable
  readonly #window: OutboundWindow
  readonly #takesSlot: (record: DrainRecord) => boolean
  #acquiring = false
  #sourceEnded = false
  #done = false
  /** the reader asked for a record (_read) and has not got one since */
  #wanted = false

  constructor(source: Readable, window: OutboundWindow, takesSlot: (record: DrainRecord) => boolean) {
    super({ objectMode: true, highWaterMark: 1 })
    this.#source = source
    this.#window = window
    this.#takesSlot = takesSlot
    source.on('readable', () => this.#pull())
    source.on('end', () => {
      this.#sourceEnded = true
      if (!this.#acquiring) this.#finish()
    })
    source.on('error', (err: Error) => this.destroy(err))
    source.on('close', () => {
      if (!this.#done && !this.#sourceEnded && !source.errored) this.destroy(prematureClose())
    })
  }

  override _read(): void {
    this.#wanted = true
    this.#pull()
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // destroyed before its end (the drain failed or was abandoned): nothing will be written after
    // this, so live messages may go; after a normal end, clientReady opens the gate
    if (err || !this.#done) this.#window.open()
    this.#done = true
    if (!this.#source.destroyed) this.#source.destroy()
    callback(err)
  }

  #pull(): void {
    // on demand, like Readable.from: a record is taken from the store (and a slot for it) only
    // when this stream's reader wants one
    while (this.#wanted && !this.#acquiring && !this.#done) {
      const record = this.#source.destroyed ? null : (this.#source.read() as DrainRecord | null)
      if (record === null) return // more comes with 'readable', or 'end'
      if (record.cmd !== 'pubrel' && !this.#window.claimForDrain(record)) continue
      if (this.#takesSlot(record)) {
        this.#acquiring = true
        this.#window.acquire().then((granted) => {
          this.#acquiring = false
          if (this.#done || this.destroyed) return
          if (!granted) {
            this.#finish()
            this.#source.destroy()
            return
          }
          this.#wanted = this.push(record)
          if (this.#sourceEnded) this.#finish()
          else this.#pull()
        }, noop)
        return
      }
      this.#wanted = this.push(record)
    }
  }

  /** The store's queue has all been handed out (or is no longer wanted): end the stream. */
  #finish(): void {
    if (this.#done) return
    this.#done = true
    this.push(null)
  }
}

function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })
}

function noop(): void {}
