import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'

/**
 * Connects mqtt.js clients and remembers them, so a test's `afterEach(closeAll)` ends every one
 * even when an assertion failed half-way.
 */
export function createClientPool() {
  const clients = new Set<MqttClient>()
  return {
    async connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
      const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
      clients.add(client)
      return client
    },
    /** A client that has not connected yet (for CONNACK refusals and the like). */
    raw(url: string, options: IClientOptions = {}): MqttClient {
      const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
      clients.add(client)
      return client
    },
    async closeAll(): Promise<void> {
      await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => {})))
      clients.clear()
    },
  }
}

export interface Received {
  topic: string
  payload: Buffer
  packet: mqtt.IPublishPacket
}

/** Collects messages; `waitFor(n)` resolves once n have arrived or rejects after a timeout. */
export function collectMessages(client: MqttClient) {
  const messages: Received[] = []
  const waiters: Array<() => void> = []
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload, packet })
    for (const w of waiters.splice(0)) w()
  })
  return {
    messages,
    async waitFor(count: number, timeoutMs = 5000): Promise<Received[]> {
      const deadline = Date.now() + timeoutMs
      while (messages.length < count) {
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`expected ${count} messages, got ${messages.length}`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          waiters.push(() => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
      return messages
    },
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
