// Everything one worker does: host its share of devices and observers (and the commander on
// worker 0), answer the coordinator's polls with counters, and hand over its raw accounting
// at the end. Transport-agnostic: runs inside a worker thread or in the coordinator's thread.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createCommander } from './commander.js'
import type { Commander } from './commander.js'
import { loadTlsMaterial } from './client-options.js'
import { createDevice } from './device.js'
import type { Device, DeviceEvents } from './device.js'
import { deviceIdFor } from './device-id.js'
import { createObserver } from './observer.js'
import type { Observer } from './observer.js'
import type { CoordinatorMessage, WorkerMessage, WorkerPlan, WorkerStats } from './protocol.js'
import { createHistogram, encodeHistogram, recordMs } from '../stats/histogram.js'
import type { Histogram } from '../stats/histogram.js'
import { createSendLedger } from '../stats/send-ledger.js'
import { now } from '../util/clock.js'

export interface WorkerRuntime {
  handle(message: CoordinatorMessage): void
}

function bump(table: Record<string, number>, key: string): void {
  table[key] = (table[key] ?? 0) + 1
}

export function createWorkerRuntime(plan: WorkerPlan, post: (message: WorkerMessage) => void): WorkerRuntime {
  const { scenario, run } = plan
  const tls = loadTlsMaterial(scenario.broker)
  const ledger = createSendLedger()
  // Reset (not replaced) after each poll: observers hold a reference to `latency`.
  const latency: Histogram = createHistogram()
  const connectTimes: Histogram = createHistogram()
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()

  const counters = {
    connected: 0,
    connects: 0,
    disconnects: 0,
    churned: 0,
    devicesDone: 0,
    skippedOffline: 0,
    commandsAnswered: 0,
    connectFailures: {} as Record<string, number>,
    clientErrors: {} as Record<string, number>,
  }
  const events: DeviceEvents = {
    connected(ms) {
      counters.connected++
      counters.connects++
      recordMs(connectTimes, ms)
    },
    disconnected() {
      counters.connected--
      counters.disconnects++
    },
    connectFailed: (reason) => bump(counters.connectFailures, reason),
    clientError: (reason) => bump(counters.clientErrors, reason),
    churned() {
      counters.connected--
      counters.churned++
    },
    skippedOffline: () => counters.skippedOffline++,
    commandAnswered: () => counters.commandsAnswered++,
    done: () => counters.devicesDone++,
  }

  const devicesTotal = plan.devices.reduce((sum, r) => sum + (r.to - r.from), 0)
  const devices: Device[] = []
  const observerFilters = scenario.observers.count > 0 ? scenario.observers.topics : []
  const observers: Observer[] = plan.observers.map((index) =>
    createObserver(index, { scenario, run, tls, latency, now, onError: (r) => bump(counters.clientErrors, r) }),
  )
  const commander: Commander | undefined = plan.commander ? createCommander(scenario, run, tls, now, (r) => bump(counters.clientErrors, r)) : undefined
  const pacers: NodeJS.Timeout[] = []
  let publishing = true
  let finishing: Promise<void> | undefined

  function stats(): WorkerStats {
    const out: WorkerStats = {
      worker: plan.worker,
      ...counters,
      connectFailures: { ...counters.connectFailures },
      clientErrors: { ...counters.clientErrors },
      devicesTotal,
      sent: ledger.sent,
      acked: ledger.acked,
      failed: ledger.failed,
      pending: ledger.pending,
      publishFailures: ledger.failures,
      observers: observers.map((o) => o.counters()),
      latency: encodeHistogram(latency),
      connectTimes: encodeHistogram(connectTimes),
      commander: commander?.counters(),
      eventLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
      eventLoopDelayMaxMs: loopDelay.max / 1e6,
    }
    // Histograms and loop delay are per interval; the coordinator accumulates them.
    latency.reset()
    connectTimes.reset()
    loopDelay.reset()
    return out
  }

  function startDevices(): void {
    for (const range of plan.devices) {
      const profile = scenario.profiles[range.profile]
      if (!profile) continue
      const create = (index: number): void => {
        if (!publishing) return
        const device = createDevice(profile, index, deviceIdFor(profile, index, run), {
          scenario,
          run,
          tls,
          ledger,
          observerFilters,
          now,
          events,
        })
        devices.push(device)
        device.start()
      }
      let next = range.from
      const startedAt = now()
      // This worker's share of the profile's ramp-up rate.
      const rate = profile.connectRate === undefined ? undefined : (profile.connectRate * (range.to - range.from)) / profile.count
      const timer = setInterval(() => {
        const allowed = rate === undefined ? next + 250 : range.from + Math.floor(((now() - startedAt) / 1000) * rate) + 1
        while (next < range.to && next < allowed) create(next++)
        if (next >= range.to || !publishing) clearInterval(timer)
      }, rate === undefined ? 5 : 20)
      pacers.push(timer)
    }
  }

  async function stopPublishing(): Promise<void> {
    publishing = false
    for (const timer of pacers) clearInterval(timer)
    for (const device of devices) device.stopPublishing()
    commander?.stop()
    // Let in-flight publishes be acknowledged, so they count as expected rather than unknown.
    const deadline = now() + scenario.graceMs
    // Outstanding commands end by an answer or their own timeout, whichever comes first.
    while ((ledger.pending > 0 || (commander?.pending ?? 0) > 0) && now() < deadline) await new Promise((r) => setTimeout(r, 20))
    const snapshot = ledger.snapshot()
    let expected = 0
    let notExpected = 0
    for (const record of snapshot.sources.values()) {
      expected += record.lastSeq - record.notExpected.length
      notExpected += record.notExpected.length
    }
    post({ type: 'publish-stopped', worker: plan.worker, info: { expected, notExpected } })
  }

  async function finish(): Promise<void> {
    publishing = false
    for (const timer of pacers) clearInterval(timer)
    await Promise.all(devices.map((d) => d.close()))
    const send = ledger.snapshot()
    const finalStats = stats()
    await commander?.close()
    await Promise.all(observers.map((o) => o.close()))
    loopDelay.disable()
    post({
      type: 'final',
      worker: plan.worker,
      stats: finalStats,
      send,
      observers: observers.map((o) => ({ index: o.index, snapshot: o.tracker.snapshot() })),
    })
  }

  const fail = (error: unknown): void => post({ type: 'fatal', worker: plan.worker, message: (error as Error)?.message ?? String(error) })

  Promise.all([...observers.map((o) => o.ready()), commander?.ready()]).then(
    () => post({ type: 'observers-ready', worker: plan.worker }),
    (error: unknown) => fail(new Error(`observer could not subscribe: ${(error as Error)?.message ?? String(error)}`)),
  )

  return {
    handle(message) {
      switch (message.type) {
        case 'go':
          startDevices()
          break
        case 'start-commands':
          if (publishing) commander?.start()
          break
        case 'poll':
          post({ type: 'stats', stats: stats() })
          break
        case 'stop-publishing':
          stopPublishing().catch(fail)
          break
        case 'finish':
          finishing ??= finish().catch(fail)
          break
      }
    },
  }
}
