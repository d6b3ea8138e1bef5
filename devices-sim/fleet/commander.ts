// The commander sends requests to random devices at a fixed rate and times their answers:
// MQTT 5 request/response (response topic + correlation data), or for 3.1.1 the same fields in
// the JSON payload. Unanswered requests count as timed out.
import { connect } from 'mqtt'
import type { MqttClient } from 'mqtt'
import { buildClientOptions, failureReason } from './client-options.js'
import type { TlsMaterial } from './client-options.js'
import { deviceIdFor, deviceTopic } from './device-id.js'
import { createRng, deriveSeed } from '../payload/rng.js'
import type { Scenario } from '../scenario/resolve-scenario.js'
import { createHistogram, encodeHistogram, recordMs } from '../stats/histogram.js'
import type { CommanderCounters } from './protocol.js'

export interface Commander {
  ready(): Promise<void>
  start(): void
  /** Requests still waiting for an answer (or their timeout). */
  readonly pending: number
  stop(): void
  counters(): CommanderCounters
  close(): Promise<void>
}

export function createCommander(scenario: Scenario, run: number, tls: TlsMaterial, now: () => number, onError: (reason: string) => void): Commander {
  const spec = scenario.commander
  if (!spec) throw new Error('scenario has no commander section')
  const targets = scenario.profiles.flatMap((profile) => (profile.commands ? [{ profile, count: profile.count }] : []))
  const totalTargets = targets.reduce((sum, t) => sum + t.count, 0)
  const timeoutMs = spec.timeoutMs
  const qos = spec.qos
  const rate = spec.rate
  const rng = createRng(deriveSeed(scenario.seed, 'commander'))
  const responseTopic = `sim/${run}/responses`
  const v5 = scenario.broker.protocol === 5
  const pending = new Map<string, number>()
  let latency = createHistogram()
  let sent = 0
  let answered = 0
  let timedOut = 0
  let failed = 0
  let nextId = 0
  let timer: NodeJS.Timeout | undefined
  let sweeper: NodeJS.Timeout | undefined

  const client: MqttClient = connect(scenario.broker.url, buildClientOptions(scenario.broker, tls, { clientId: `sim-commander-${run}`, clean: true }))
  const subscribed = new Promise<void>((resolve, reject) => {
    client.once('connect', () => client.subscribe(responseTopic, { qos: spec.qos }, (error) => (error ? reject(error) : resolve())))
    client.once('error', reject)
  })
  subscribed.then(() => client.on('error', (e) => onError(`commander: ${failureReason(e)}`)), () => undefined)

  client.on('message', (_topic, payload, packet) => {
    let id: string | undefined
    if (v5 && packet.properties?.correlationData) id = packet.properties.correlationData.toString('utf8')
    else {
      try {
        const body = JSON.parse(payload.toString('utf8')) as { correlation?: unknown }
        if (typeof body.correlation === 'string') id = body.correlation
      } catch {
        return
      }
    }
    const sentAt = id === undefined ? undefined : pending.get(id)
    if (id === undefined || sentAt === undefined) return
    pending.delete(id)
    answered++
    recordMs(latency, now() - sentAt)
  })

  function sendOne(): void {
    if (!client.connected) return
    let pick = rng.int(totalTargets)
    const target = targets.find((t) => (pick < t.count ? true : ((pick -= t.count), false)))
    if (!target?.profile.commands) return
    const deviceId = deviceIdFor(target.profile, pick, run)
    const topic = deviceTopic(target.profile.commands.topic, target.profile, pick, deviceId, run)
    const id = `${run}-${nextId++}`
    const body = v5 ? { cmd: 'ping', deviceId } : { cmd: 'ping', deviceId, responseTopic, correlation: id }
    pending.set(id, now())
    sent++
    client.publish(
      topic,
      JSON.stringify(body),
      { qos, ...(v5 ? { properties: { responseTopic, correlationData: Buffer.from(id) } } : {}) },
      (error) => {
        if (error && pending.delete(id)) failed++
      },
    )
  }

  function stop(): void {
    if (timer) clearInterval(timer)
    timer = undefined
  }

  function sweep(): void {
    const cutoff = now() - timeoutMs
    for (const [id, sentAt] of pending) {
      if (sentAt > cutoff) break // insertion order = send order
      pending.delete(id)
      timedOut++
    }
  }

  return {
    ready: () => subscribed,
    get pending() {
      return pending.size
    },
    start() {
      if (timer) return
      const intervalMs = 1000 / rate
      let due = now()
      // Catch up in a loop so rates above the timer resolution (~1 kHz) still hold.
      timer = setInterval(() => {
        const t = now()
        while (due <= t) {
          sendOne()
          due += intervalMs
        }
      }, Math.max(1, Math.min(intervalMs, 50)))
      sweeper = setInterval(sweep, 100)
    },
    stop,
    counters() {
      const out = { sent, answered, timedOut, failed, latency: encodeHistogram(latency) }
      latency.destroy()
      latency = createHistogram()
      return out
    },
    async close() {
      stop()
      if (sweeper) clearInterval(sweeper)
      sweeper = undefined
      // Whatever is still unanswered at the end never got its answer in time.
      timedOut += pending.size
      pending.clear()
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => client.end(true, () => resolve()), 2000)
        client.end(false, () => {
          clearTimeout(force)
          resolve()
        })
      })
      client.removeAllListeners()
      client.on('error', () => {})
    },
  }
}
