// The coordinator: splits the fleet across workers, drives the phases (observers subscribe ->
// devices ramp up and publish -> stop -> drain -> finish), aggregates live counters for the
// progress display and builds the final report.
import { randomInt } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { createInProcessLink, createThreadLink } from './worker-link.js'
import type { WorkerLink } from './worker-link.js'
import type { DeviceRange, PublishStoppedInfo, WorkerMessage, WorkerPlan, WorkerStats } from './protocol.js'
import { buildReport } from '../report/report.js'
import type { Report, StopReason } from '../report/report.js'
import type { Scenario } from '../scenario/resolve-scenario.js'
import { addEncoded, createHistogram, summarize } from '../stats/histogram.js'
import { now } from '../util/clock.js'

export type FleetPhase = 'subscribing' | 'running' | 'draining' | 'finishing' | 'done'

export interface ProgressSample {
  phase: FleetPhase
  elapsedMs: number
  devicesTotal: number
  connected: number
  sent: number
  received: number
  /** Per second, over the last sample interval. */
  rateOut: number
  rateIn: number
  /** Latency p99 over the last sample interval, ms. */
  p99Ms: number
  errors: number
  lostSoFar: number | undefined
  cpuPercent: number
}

export interface FleetRunOptions {
  /** Worker threads; 0 runs everything in this thread. Default: scenario.workers, else CPU count. */
  workers?: number
  onProgress?: (sample: ProgressSample) => void
  progressIntervalMs?: number
}

export interface FleetRun {
  /** Settles with the report once the run has ended (by itself or after stop()). */
  readonly report: Promise<Report>
  readonly phase: FleetPhase
  /** Ends publishing early; the run still drains and reports. Idempotent. */
  stop(): void
}

export class FleetError extends Error {
  readonly code = 'FLEET_FAILED'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'FleetError'
  }
}

/** Contiguous slices of each profile, so a worker's ramp-up share is proportional. */
export function splitDevices(scenario: Scenario, workers: number): DeviceRange[][] {
  const plans: DeviceRange[][] = Array.from({ length: workers }, () => [])
  scenario.profiles.forEach((profile, p) => {
    for (let w = 0; w < workers; w++) {
      const from = Math.floor((profile.count * w) / workers)
      const to = Math.floor((profile.count * (w + 1)) / workers)
      if (to > from) plans[w]?.push({ profile: p, from, to })
    }
  })
  return plans
}

function sumBy<T>(items: Iterable<T>, pick: (item: T) => number): number {
  let sum = 0
  for (const item of items) sum += pick(item)
  return sum
}

function errorCount(s: WorkerStats): number {
  return sumBy(Object.values(s.connectFailures), (v) => v) + s.failed + sumBy(Object.values(s.clientErrors), (v) => v)
}

export function startFleet(scenario: Scenario, options: FleetRunOptions = {}): FleetRun {
  const totalDevices = sumBy(scenario.profiles, (p) => p.count)
  const requested = options.workers ?? scenario.workers ?? availableParallelism()
  const inProcess = requested === 0
  const workerCount = Math.max(1, Math.min(inProcess ? 1 : requested, Math.max(totalDevices, scenario.observers.count, 1)))
  const run = randomInt(1, 2 ** 32 - 1)
  const deviceSplit = splitDevices(scenario, workerCount)
  const plans: WorkerPlan[] = deviceSplit.map((devices, worker) => ({
    worker,
    workers: workerCount,
    run,
    scenario,
    devices,
    observers: Array.from({ length: scenario.observers.count }, (_, i) => i).filter((i) => i % workerCount === worker),
    commander: worker === 0 && scenario.commander !== undefined,
  }))

  const startedAt = now()
  const cpuStart = process.cpuUsage()
  let goAt = startedAt
  let publishEndedAt = 0
  let phase: FleetPhase = 'subscribing'
  let stoppedBy: StopReason | undefined
  let fatal: Error | undefined
  let connectedPeak = 0
  let loopMax = 0
  let loopP99 = 0

  const latency = createHistogram()
  const windowLatency = createHistogram()
  const connectTimes = createHistogram()
  const commandLatency = createHistogram()
  const latest = new Map<number, WorkerStats>()
  const ready = new Set<number>()
  const stopped = new Map<number, PublishStoppedInfo>()
  const finals = new Map<number, Extract<WorkerMessage, { type: 'final' }>>()
  let previous = { at: startedAt, sent: 0, received: 0, cpu: process.cpuUsage() }
  let pollOutstanding = 0
  const waiters = new Set<() => void>()
  const poke = (): void => {
    for (const w of [...waiters]) w()
  }

  const links: WorkerLink[] = plans.map((plan) => (inProcess ? createInProcessLink(plan) : createThreadLink(plan)))

  function absorb(stats: WorkerStats): void {
    latest.set(stats.worker, stats)
    addEncoded(latency, stats.latency)
    addEncoded(windowLatency, stats.latency)
    addEncoded(connectTimes, stats.connectTimes)
    if (stats.commander) addEncoded(commandLatency, stats.commander.latency)
    loopMax = Math.max(loopMax, stats.eventLoopDelayMaxMs)
    loopP99 = Math.max(loopP99, stats.eventLoopDelayP99Ms)
  }

  let commandsStarted = scenario.commander === undefined
  /** Commands start once the whole fleet has connected (or after 5 s), not mid ramp-up. */
  function maybeStartCommands(): void {
    if (commandsStarted || phase !== 'running') return
    const connected = sumBy(latest.values(), (s) => s.connected)
    if (connected >= totalDevices || now() - goAt >= 5000) {
      commandsStarted = true
      links[0]?.send({ type: 'start-commands' })
    }
  }

  function emitProgress(): void {
    const t = now()
    const all = [...latest.values()]
    const connected = sumBy(all, (s) => s.connected)
    connectedPeak = Math.max(connectedPeak, connected)
    const sent = sumBy(all, (s) => s.sent)
    const received = sumBy(all, (s) => sumBy(s.observers, (o) => o.received))
    const cpu = process.cpuUsage()
    const dt = Math.max(1, t - previous.at)
    const sample: ProgressSample = {
      phase,
      elapsedMs: t - startedAt,
      devicesTotal: totalDevices,
      connected,
      sent,
      received,
      rateOut: ((sent - previous.sent) * 1000) / dt,
      rateIn: ((received - previous.received) * 1000) / dt,
      p99Ms: windowLatency.totalCount === 0 ? 0 : windowLatency.getValueAtPercentile(99) / 1000,
      errors: sumBy(all, errorCount),
      lostSoFar: undefined,
      cpuPercent: ((cpu.user - previous.cpu.user + cpu.system - previous.cpu.system) / 1000 / dt) * 100,
    }
    previous = { at: t, sent, received, cpu }
    windowLatency.reset()
    options.onProgress?.(sample)
  }

  function handle(message: WorkerMessage): void {
    switch (message.type) {
      case 'observers-ready':
        ready.add(message.worker)
        break
      case 'stats':
        absorb(message.stats)
        maybeStartCommands()
        pollOutstanding--
        if (pollOutstanding === 0) emitProgress()
        break
      case 'publish-stopped':
        stopped.set(message.worker, message.info)
        break
      case 'final':
        absorb(message.stats)
        finals.set(message.worker, message)
        break
      case 'fatal':
        fatal ??= new FleetError(`worker ${message.worker}: ${message.message}`)
        break
    }
    poke()
  }

  links.forEach((link, i) => {
    link.onMessage(handle)
    link.onExit((error) => {
      if (!finals.has(i)) fatal ??= new FleetError(`worker ${i} ended before reporting${error ? `: ${error.message}` : ''}`, { cause: error })
      poke()
    })
  })

  const broadcast = (message: Parameters<WorkerLink['send']>[0]): void => links.forEach((l) => l.send(message))

  /** Waits until `condition` holds, a fatal error occurs, or the deadline passes. */
  async function until(condition: () => boolean, deadline: number): Promise<boolean> {
    while (!condition()) {
      if (fatal) throw fatal
      const left = deadline - now()
      if (left <= 0) return false
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          waiters.delete(done)
          resolve()
        }
        const timer = setTimeout(done, Math.min(left, 250))
        waiters.add(done)
      })
    }
    if (fatal) throw fatal
    return true
  }

  const requestStop = (reason: StopReason): void => {
    stoppedBy ??= reason
    poke()
  }

  async function drive(): Promise<Report> {
    const setupDeadline = now() + scenario.broker.connectTimeoutMs + 5000
    if (!(await until(() => ready.size === workerCount, setupDeadline))) {
      throw new FleetError(`observers did not subscribe within ${Math.round(setupDeadline - startedAt)}ms (is the broker at ${scenario.broker.url} up?)`)
    }
    if (stoppedBy) throw new FleetError('stopped before the fleet started')
    phase = 'running'
    goAt = now()
    previous = { at: goAt, sent: 0, received: 0, cpu: process.cpuUsage() }
    broadcast({ type: 'go' })

    const interval = options.progressIntervalMs ?? 1000
    const poller = setInterval(() => {
      if (pollOutstanding > 0) return // a slow worker: skip a beat rather than pile up polls
      pollOutstanding = workerCount
      broadcast({ type: 'poll' })
    }, interval)
    const durationTimer = scenario.durationMs === undefined ? undefined : setTimeout(() => requestStop('duration'), scenario.durationMs)
    try {
      const allCounted = scenario.profiles.every((p) => p.publish.every((s) => s.count !== undefined))
      // Runs until stop(), the duration timer, or (count-limited runs) every device is done;
      // until() throws if a worker fails meanwhile.
      await until(() => stoppedBy !== undefined || (allCounted && sumBy(latest.values(), (s) => s.devicesDone) >= totalDevices), Number.POSITIVE_INFINITY)
      requestStop('count')
      if (durationTimer) clearTimeout(durationTimer)

      phase = 'draining'
      publishEndedAt = now()
      broadcast({ type: 'stop-publishing' })
      const drainDeadline = publishEndedAt + scenario.graceMs
      await until(() => stopped.size === workerCount, drainDeadline + 5000)
      const expectedPerStream = sumBy(stopped.values(), (s) => s.expected)
      const cleanLedger = sumBy(stopped.values(), (s) => s.notExpected) === 0
      const streamCount = scenario.observers.shared ? 1 : scenario.observers.count
      // Finish early once every observation stream holds all expected messages.
      await until(() => {
        if (streamCount === 0) return true
        const observers = [...latest.values()].flatMap((s) => s.observers)
        const uniques = scenario.observers.shared ? [sumBy(observers, (o) => o.unique)] : observers.map((o) => o.unique)
        return cleanLedger && uniques.length === streamCount && uniques.every((u) => u >= expectedPerStream)
      }, drainDeadline)
    } finally {
      clearInterval(poller)
      if (durationTimer) clearTimeout(durationTimer)
    }

    phase = 'finishing'
    broadcast({ type: 'finish' })
    if (!(await until(() => finals.size === workerCount, now() + 30_000))) throw new FleetError('workers did not report within 30s of finishing')
    const endedAt = now()
    phase = 'done'
    const cpu = process.cpuUsage(cpuStart)
    const commanderTotals = [...finals.values()].map((f) => f.stats.commander).find((c) => c !== undefined)
    return buildReport({
      scenario,
      run,
      startedAt,
      goAt,
      publishEndedAt,
      endedAt,
      stoppedBy: stoppedBy ?? 'stopped',
      finals: [...finals.values()].sort((a, b) => a.worker - b.worker),
      connectedPeak,
      latencyMs: summarize(latency),
      connectMs: summarize(connectTimes),
      commandLatencyMs: summarize(commandLatency),
      commanderTotals: commanderTotals
        ? { sent: commanderTotals.sent, answered: commanderTotals.answered, timedOut: commanderTotals.timedOut, failed: commanderTotals.failed }
        : undefined,
      cpu: { userMs: cpu.user / 1000, systemMs: cpu.system / 1000, wallMs: endedAt - startedAt, cores: availableParallelism() },
      eventLoopDelayMaxMs: loopMax,
      eventLoopDelayP99Ms: loopP99,
      workers: inProcess ? 0 : workerCount,
    })
  }

  const report = drive().finally(async () => {
    if (finals.size < workerCount) {
      // Failed mid-run: still ask workers to close their clients (matters in-process).
      broadcast({ type: 'finish' })
      const deadline = now() + 5000
      while (finals.size < workerCount && now() < deadline) await new Promise((r) => setTimeout(r, 50))
    }
    await Promise.all(links.map((l) => l.terminate().catch(() => undefined)))
    for (const h of [latency, windowLatency, connectTimes, commandLatency]) h.destroy()
  })
  // Callers may only look at .report later; avoid an unhandled rejection in the meantime.
  report.catch(() => undefined)

  return {
    report,
    get phase() {
      return phase
    },
    stop: () => requestStop('stopped'),
  }
}
