// An observer subscriber: receives the fleet's telemetry and checks every message against the
// envelope (received / duplicate / out of order per device stream, end-to-end latency).
import { connect } from 'mqtt'
import type { MqttClient } from 'mqtt'
import { buildClientOptions, failureReason } from './client-options.js'
import type { TlsMaterial } from './client-options.js'
import { readEnvelope } from '../payload/envelope.js'
import type { Scenario } from '../scenario/resolve-scenario.js'
import type { Histogram } from '../stats/histogram.js'
import { recordMs } from '../stats/histogram.js'
import { createSequenceTracker, sourceKey } from '../stats/sequence-tracker.js'
import type { SequenceTracker } from '../stats/sequence-tracker.js'
import type { ObserverCounters } from './protocol.js'

export interface Observer {
  readonly index: number
  readonly tracker: SequenceTracker
  /** Resolves once subscribed; rejects when the first connection or subscription fails. */
  ready(): Promise<void>
  counters(): ObserverCounters
  close(): Promise<void>
}

export interface ObserverContext {
  scenario: Scenario
  run: number
  tls: TlsMaterial
  latency: Histogram
  now: () => number
  onError(reason: string): void
}

export function subscriptionFilters(scenario: Scenario): string[] {
  const { topics, shared } = scenario.observers
  return shared ? topics.map((t) => `$share/${shared}/${t}`) : [...topics]
}

export function createObserver(index: number, ctx: ObserverContext): Observer {
  const tracker = createSequenceTracker()
  let foreign = 0
  let lastReceiveAt = 0
  const client: MqttClient = connect(
    ctx.scenario.broker.url,
    buildClientOptions(ctx.scenario.broker, ctx.tls, { clientId: `sim-observer-${ctx.run}-${index}`, clean: true }),
  )
  const filters = subscriptionFilters(ctx.scenario)
  const subscribed = new Promise<void>((resolve, reject) => {
    client.once('connect', () => {
      client.subscribe(
        Object.fromEntries(filters.map((f) => [f, { qos: ctx.scenario.observers.qos }])),
        (error, granted) => {
          if (error) return reject(error)
          const refused = granted?.find((g) => g.qos === 128 || g.qos > 2)
          if (refused) return reject(new Error(`subscription to "${refused.topic}" refused by the broker`))
          resolve()
        },
      )
    })
    client.once('error', reject)
  })
  // Later errors (after ready) are reported, not thrown.
  subscribed.then(
    () => client.on('error', (error) => ctx.onError(`observer: ${failureReason(error)}`)),
    () => undefined,
  )

  client.on('message', (_topic, payload) => {
    const envelope = readEnvelope(payload)
    if (!envelope || envelope.run !== ctx.run) {
      foreign++
      return
    }
    const now = ctx.now()
    lastReceiveAt = now
    if (tracker.record(sourceKey(envelope.deviceId, envelope.stream), envelope.seq) !== 'duplicate') {
      recordMs(ctx.latency, now - envelope.ts)
    }
  })

  let closing: Promise<void> | undefined
  return {
    index,
    tracker,
    ready: () => subscribed,
    counters: () => ({
      index,
      received: tracker.received,
      unique: tracker.unique,
      duplicates: tracker.duplicates,
      outOfOrder: tracker.outOfOrder,
      foreign,
      lastReceiveAt,
    }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => client.end(true, () => resolve()), 2000)
        client.end(false, () => {
          clearTimeout(force)
          resolve()
        })
      }).then(() => {
        client.removeAllListeners()
        client.on('error', () => {})
      })
      return closing
    },
  }
}
