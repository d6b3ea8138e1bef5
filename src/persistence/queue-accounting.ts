// Per-session size of the outgoing queue, kept in memory so that the limit check on every
// enqueue and stats() never count rows. Loaded from the outgoing table at setup and rebuilt from
// it whenever a commit fails (memory must not remember rolled-back rows).

export type QueuePolicy = 'drop-oldest' | 'refuse'

export interface QueueLimits {
  /** messages (queued and in flight) per session; 0 = unlimited */
  maxMessages: number
  /** payload bytes per session; 0 = unlimited */
  maxBytes: number
}

export interface QueueUsage {
  count: number
  bytes: number
  inflight: number
}

export class QueueAccounting {
  readonly #byClient = new Map<string, QueueUsage>()
  #count = 0
  #inflight = 0

  /** rows waiting for a first delivery attempt */
  get queued(): number {
    return this.#count - this.#inflight
  }

  /** rows with a packet id: sent and not yet acknowledged, PUBREL records included */
  get inflight(): number {
    return this.#inflight
  }

  usage(clientId: string): QueueUsage {
    return this.#byClient.get(clientId) ?? { count: 0, bytes: 0, inflight: 0 }
  }

  /** Whether one more message of `bytes` fits the session's limits. */
  fits(clientId: string, bytes: number, limits: QueueLimits): boolean {
    const usage = this.usage(clientId)
    if (limits.maxMessages > 0 && usage.count + 1 > limits.maxMessages) return false
    if (limits.maxBytes > 0 && usage.bytes + bytes > limits.maxBytes) return false
    return true
  }

  add(clientId: string, bytes: number, inflight = false): void {
    let usage = this.#byClient.get(clientId)
    if (!usage) this.#byClient.set(clientId, (usage = { count: 0, bytes: 0, inflight: 0 }))
    usage.count++
    usage.bytes += bytes
    this.#count++
    if (inflight) {
      usage.inflight++
      this.#inflight++
    }
  }

  remove(clientId: string, bytes: number, inflight: boolean): void {
    const usage = this.#byClient.get(clientId)
    if (!usage) return
    usage.count--
    usage.bytes -= bytes
    this.#count--
    if (inflight) {
      usage.inflight--
      this.#inflight--
    }
    if (usage.count <= 0) this.#byClient.delete(clientId)
  }

  /** A row changed size or state in place (a packet id assigned, a PUBLISH replaced by a PUBREL). */
  change(clientId: string, bytesDelta: number, wasInflight: boolean, isInflight: boolean): void {
    const usage = this.#byClient.get(clientId)
    if (!usage) return
    usage.bytes += bytesDelta
    const delta = Number(isInflight) - Number(wasInflight)
    usage.inflight += delta
    this.#inflight += delta
  }

  removeClient(clientId: string): void {
    const usage = this.#byClient.get(clientId)
    if (!usage) return
    this.#count -= usage.count
    this.#inflight -= usage.inflight
    this.#byClient.delete(clientId)
  }

  reset(rows: Iterable<{ client_id: string; count: number; bytes: number; inflight: number }>): void {
    this.#byClient.clear()
    this.#count = 0
    this.#inflight = 0
    for (const row of rows) {
      this.#byClient.set(row.client_id, { count: row.count, bytes: row.bytes, inflight: row.inflight })
      this.#count += row.count
      this.#inflight += row.inflight
    }
  }
}
