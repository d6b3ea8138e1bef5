// Lean load generation for the bench: raw mqtt.js clients with large in-flight windows, so the
// load generator is not what limits throughput.
import { connectAsync } from 'mqtt'
import type { IClientOptions, MqttClient } from 'mqtt'

export type QoS = 0 | 1 | 2

export async function connectClients(url: string, count: number, options: (i: number) => IClientOptions, concurrency = 200): Promise<MqttClient[]> {
  const clients: MqttClient[] = new Array(count)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++
      const client = await connectAsync(url, { reconnectPeriod: 0, keepalive: 60, protocolVersion: 4, ...options(i) })
      // mqtt.js waits for 'drain' once per queued packet; a large window means many waiters.
      client.stream.setMaxListeners(0)
      clients[i] = client
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  } catch (error) {
    await closeClients(clients.filter(Boolean))
    throw error
  }
  return clients
}

export async function closeClients(clients: readonly MqttClient[]): Promise<void> {
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          const force = setTimeout(() => c.end(true, () => resolve()), 3000)
          c.end(false, () => {
            clearTimeout(force)
            resolve()
          })
        }),
    ),
  )
}

export interface PublishPlan {
  count: number
  qos: QoS
  window: number
  retain?: boolean
  topic(i: number): string
  payload(i: number): Buffer
}

/** Publishes `count` messages keeping up to `window` unacknowledged (unwritten for QoS 0). */
export function publishWindowed(client: MqttClient, plan: PublishPlan): Promise<{ acked: number; failed: number }> {
  return new Promise((resolve) => {
    let sent = 0
    let settled = 0
    let failed = 0
    const pump = (): void => {
      while (sent < plan.count && sent - settled < plan.window) {
        const i = sent++
        client.publish(plan.topic(i), plan.payload(i), { qos: plan.qos, retain: plan.retain ?? false }, (error) => {
          settled++
          if (error) failed++
          if (settled === plan.count) resolve({ acked: settled - failed, failed })
          // Refill from a fresh tick: publishing inside mqtt.js's callback would recurse deeply.
          else if (sent - settled < plan.window / 2 || sent - settled === 0) setImmediate(pump)
        })
      }
    }
    if (plan.count === 0) resolve({ acked: 0, failed: 0 })
    else pump()
  })
}

export interface Receipt {
  received: number
  firstAt: number
  lastAt: number
}

/**
 * Counts messages on `clients` until `expected` arrived, or nothing arrived for `idleMs`.
 * `onMessage` can look at each payload (latency scenarios).
 */
export function collect(
  clients: readonly MqttClient[],
  expected: number,
  idleMs: number,
  onMessage?: (payload: Buffer) => void,
): { done: Promise<Receipt>; stop(): void; touch(): void } {
  const receipt: Receipt = { received: 0, firstAt: 0, lastAt: 0 }
  let finish: (r: Receipt) => void = () => undefined
  const done = new Promise<Receipt>((resolve) => (finish = resolve))
  let lastActivity = performance.now()
  // A periodic check, not a timer re-armed per message: cheap at 200k msg/s.
  const idle = setInterval(() => {
    if (performance.now() - lastActivity > idleMs) stop()
  }, Math.min(250, idleMs))
  const listener = (_topic: string, payload: Buffer): void => {
    const t = performance.now()
    if (receipt.received === 0) receipt.firstAt = t
    receipt.lastAt = t
    lastActivity = t
    receipt.received++
    onMessage?.(payload)
    if (receipt.received >= expected) stop()
  }
  let stopped = false
  function stop(): void {
    if (stopped) return
    stopped = true
    clearInterval(idle)
    for (const c of clients) c.removeListener('message', listener)
    finish(receipt)
  }
  for (const c of clients) c.on('message', listener)
  // touch(): the caller saw progress elsewhere (e.g. publishes still being acked).
  return { done, stop, touch: () => void (lastActivity = performance.now()) }
}
