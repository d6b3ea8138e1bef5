// One simulated device: an mqtt.js client that publishes telemetry on its schedule, announces
// itself on a retained status topic (Last Will "offline"), answers commands (MQTT 5
// request/response) and occasionally drops off the network (churn).
import { connect } from 'mqtt'
import type { IPublishPacket, MqttClient } from 'mqtt'
import { deviceTopic } from './device-id.js'
import { buildClientOptions, failureReason } from './client-options.js'
import type { TlsMaterial } from './client-options.js'
import { createPayloadBuilder } from '../payload/payload-builder.js'
import type { PayloadBuilder } from '../payload/payload-builder.js'
import { createRng, deriveSeed } from '../payload/rng.js'
import type { Rng } from '../payload/rng.js'
import type { Profile, PublishStream, Scenario } from '../scenario/resolve-scenario.js'
import { topicMatches } from '../scenario/topics.js'
import type { SendLedger } from '../stats/send-ledger.js'
import { sourceKey } from '../stats/sequence-tracker.js'

export interface DeviceEvents {
  connected(connectMs: number): void
  disconnected(): void
  connectFailed(reason: string): void
  clientError(reason: string): void
  churned(): void
  skippedOffline(): void
  commandAnswered(): void
  done(): void
}

export interface DeviceContext {
  scenario: Scenario
  run: number
  tls: TlsMaterial
  ledger: SendLedger
  observerFilters: readonly string[]
  now: () => number
  events: DeviceEvents
}

type DeviceState = 'idle' | 'connecting' | 'online' | 'churned' | 'closing' | 'closed'

interface StreamRuntime {
  spec: PublishStream
  index: number
  seq: number
  source: string
  build: PayloadBuilder
  /** Fixed topic, or undefined when the template uses {seq}. */
  topic: string | undefined
  /** Cached "do observers see this topic" for fixed topics. */
  observed: boolean
  timer: NodeJS.Timeout | undefined
  /** Nominal time of the next publish; jitter is applied around it so the mean rate holds. */
  nextAt: number
  done: boolean
}

export interface Device {
  readonly id: string
  readonly state: DeviceState
  start(): void
  stopPublishing(): void
  close(timeoutMs?: number): Promise<void>
}

export function createDevice(profile: Profile, index: number, deviceId: string, ctx: DeviceContext): Device {
  const { scenario, run } = ctx
  const scheduleRng: Rng = createRng(deriveSeed(scenario.seed, 'schedule', profile.name, index))
  let state: DeviceState = 'idle'
  let client: MqttClient | undefined
  let attemptStartedAt = 0
  let attemptFailed = false
  let everConnected = false
  let publishing = true
  let churnTimer: NodeJS.Timeout | undefined
  let reconnectTimer: NodeJS.Timeout | undefined
  let closePromise: Promise<void> | undefined
  let doneReported = false

  const isObserved = (topic: string): boolean => ctx.observerFilters.some((filter) => topicMatches(filter, topic))

  const streams: StreamRuntime[] = profile.publish.map((spec, streamIndex) => {
    const fixedTopic = spec.topic.includes('{seq}') ? undefined : deviceTopic(spec.topic, profile, index, deviceId, run)
    return {
      spec,
      index: streamIndex,
      seq: 0,
      source: sourceKey(deviceId, streamIndex),
      build: createPayloadBuilder(spec.payload, {
        run,
        deviceId,
        profile: profile.name,
        stream: streamIndex,
        intervalMs: spec.intervalMs,
        rng: createRng(deriveSeed(scenario.seed, 'payload', profile.name, index, streamIndex)),
      }),
      topic: fixedTopic,
      observed: fixedTopic === undefined ? false : isObserved(fixedTopic),
      timer: undefined,
      nextAt: 0,
      done: spec.count === 0,
    }
  })

  const statusTopic = profile.status ? deviceTopic(profile.status.topic, profile, index, deviceId, run) : undefined
  const commandTopic = profile.commands ? deviceTopic(profile.commands.topic, profile, index, deviceId, run) : undefined

  function checkDone(): void {
    if (!doneReported && streams.every((s) => s.done)) {
      doneReported = true
      ctx.events.done()
    }
  }

  function publishOnce(stream: StreamRuntime): void {
    if (state !== 'online' || !client?.connected) {
      // Offline ticks are skipped, not queued: a real sensor has nothing to send for them.
      ctx.events.skippedOffline()
      return
    }
    const seq = ++stream.seq
    const topic = stream.topic ?? deviceTopic(stream.spec.topic, profile, index, deviceId, run, seq)
    const observed = stream.topic === undefined ? isObserved(topic) : stream.observed
    const payload = stream.build(seq, ctx.now())
    ctx.ledger.begin(stream.source, seq, observed)
    client.publish(topic, payload, { qos: stream.spec.qos, retain: stream.spec.retain }, (error) => {
      ctx.ledger.settle(stream.source, seq, error ?? undefined)
    })
    if (stream.spec.count !== undefined && stream.seq >= stream.spec.count) {
      stream.done = true
      checkDone()
    }
  }

  function scheduleStream(stream: StreamRuntime): void {
    if (!publishing || stream.done) return
    const jitter = stream.spec.jitterMs > 0 ? scheduleRng.range(-stream.spec.jitterMs, stream.spec.jitterMs) : 0
    const delay = Math.max(0, stream.nextAt + jitter - ctx.now())
    stream.timer = setTimeout(() => {
      stream.timer = undefined
      stream.nextAt += stream.spec.intervalMs
      publishOnce(stream)
      // After a stall (event loop blocked, device offline) resume from now rather than bursting.
      if (stream.nextAt < ctx.now() - stream.spec.intervalMs) stream.nextAt = ctx.now()
      scheduleStream(stream)
    }, delay)
  }

  function startStreams(): void {
    for (const stream of streams) {
      if (stream.timer || stream.done) continue
      // A random phase spreads a fleet's publishes over the interval instead of in bursts.
      stream.nextAt = ctx.now() + scheduleRng.range(0, stream.spec.intervalMs)
      scheduleStream(stream)
    }
  }

  function stopStreams(): void {
    for (const stream of streams) {
      if (stream.timer) clearTimeout(stream.timer)
      stream.timer = undefined
    }
  }

  function scheduleChurn(): void {
    const churn = profile.churn
    if (!churn || churn.perMinute <= 0 || !publishing) return
    // Exponential gaps: each device churns independently at perMinute/60 per second.
    const ratePerMs = churn.perMinute / 60_000
    const gap = -Math.log(1 - scheduleRng.next()) / ratePerMs
    churnTimer = setTimeout(() => {
      churnTimer = undefined
      if (state !== 'online' || !client) return scheduleChurn()
      state = 'churned'
      ctx.events.churned()
      stopStreams()
      if (churn.mode === 'abrupt') client.stream.destroy()
      else client.end(false)
      // Stop mqtt.js from reconnecting on its own; the device comes back after its offline time.
      const c = client
      setImmediate(() => {
        if (churn.mode === 'abrupt') c.end(true)
      })
      reconnectTimer = setTimeout(() => {
        reconnectTimer = undefined
        if (state !== 'churned') return
        state = 'connecting'
        attemptStartedAt = ctx.now()
        attemptFailed = false
        c.reconnect()
      }, churn.offlineMs)
    }, gap)
  }

  function answerCommand(packet: IPublishPacket, payload: Buffer): void {
    const c = client
    if (!c) return
    let responseTopic: string | undefined
    let correlation: Buffer | string | undefined
    if (packet.properties?.responseTopic) {
      responseTopic = packet.properties.responseTopic
      correlation = packet.properties.correlationData
    } else {
      // MQTT 3.1.1 has no response topic: the commander puts it in the JSON payload.
      try {
        const body = JSON.parse(payload.toString('utf8')) as { responseTopic?: unknown; correlation?: unknown }
        if (typeof body.responseTopic === 'string') responseTopic = body.responseTopic
        if (typeof body.correlation === 'string') correlation = body.correlation
      } catch {
        // Not a request we understand: ignore, as a real device would.
      }
    }
    if (!responseTopic) return
    const respond = (): void => {
      if (!c.connected) return
      const body = { deviceId, ok: true, ts: ctx.now(), ...(typeof correlation === 'string' ? { correlation } : {}) }
      const properties = Buffer.isBuffer(correlation) && scenario.broker.protocol === 5 ? { correlationData: correlation } : undefined
      c.publish(responseTopic, JSON.stringify(body), { qos: profile.commands?.qos ?? 1, ...(properties ? { properties } : {}) }, (error) => {
        if (!error) ctx.events.commandAnswered()
      })
    }
    const delay = profile.commands?.delayMs ?? 0
    if (delay > 0) setTimeout(respond, delay)
    else respond()
  }

  function onConnect(): void {
    everConnected = true
    state = 'online'
    ctx.events.connected(ctx.now() - attemptStartedAt)
    const c = client
    if (!c) return
    if (statusTopic && profile.status) c.publish(statusTopic, profile.status.online, { qos: profile.status.qos, retain: true })
    if (commandTopic && profile.commands) c.subscribe(commandTopic, { qos: profile.commands.qos })
    if (publishing) {
      startStreams()
      if (!churnTimer) scheduleChurn()
    }
  }

  return {
    id: deviceId,
    get state() {
      return state
    },
    start() {
      if (state !== 'idle') return
      state = 'connecting'
      attemptStartedAt = ctx.now()
      const will = statusTopic && profile.status ? { topic: statusTopic, payload: Buffer.from(profile.status.offline), qos: profile.status.qos, retain: true } : undefined
      const c = connect(
        scenario.broker.url,
        buildClientOptions(scenario.broker, ctx.tls, {
          clientId: deviceId,
          clean: profile.session.clean,
          sessionExpiryMs: profile.session.expiryMs,
          ...(profile.keepalive === undefined ? {} : { keepalive: profile.keepalive }),
          ...(will ? { will } : {}),
        }),
      )
      client = c
      c.on('connect', onConnect)
      c.on('reconnect', () => {
        attemptStartedAt = ctx.now()
        attemptFailed = false
        if (state === 'online') state = 'connecting'
      })
      c.on('error', (error) => {
        const reason = failureReason(error)
        if (state === 'connecting' && !attemptFailed) {
          attemptFailed = true
          ctx.events.connectFailed(reason)
        } else {
          ctx.events.clientError(reason)
        }
      })
      c.on('close', () => {
        if (state === 'online') {
          state = 'connecting'
          stopStreams()
          ctx.events.disconnected()
        } else if (state === 'churned' && everConnected && client?.connected === false) {
          // Counted once per churn: 'close' follows our own destroy/end.
        } else if (state === 'connecting' && !attemptFailed) {
          attemptFailed = true
          ctx.events.connectFailed('closed before CONNACK')
        }
      })
      c.on('message', (topic, payload, packet) => {
        if (topic === commandTopic) answerCommand(packet, payload)
      })
    },
    stopPublishing() {
      publishing = false
      stopStreams()
      if (churnTimer) clearTimeout(churnTimer)
      churnTimer = undefined
    },
    close(timeoutMs = 3000) {
      closePromise ??= (async () => {
        publishing = false
        stopStreams()
        if (churnTimer) clearTimeout(churnTimer)
        if (reconnectTimer) clearTimeout(reconnectTimer)
        const wasOnline = state === 'online'
        state = 'closing'
        const c = client
        if (!c) {
          state = 'closed'
          return
        }
        if (wasOnline) ctx.events.disconnected()
        if (wasOnline && statusTopic && profile.status && c.connected) {
          c.publish(statusTopic, profile.status.offline, { qos: profile.status.qos, retain: true })
        }
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => c.end(true, () => resolve()), timeoutMs)
          c.end(false, () => {
            clearTimeout(force)
            resolve()
          })
        })
        c.removeAllListeners()
        // Swallow late socket errors after close; they are not the device's failures.
        c.on('error', () => {})
        state = 'closed'
      })()
      return closePromise
    },
  }
}
