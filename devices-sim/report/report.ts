// The report of one run: plain JSON (written by --json), built from the workers' final
// accounting. Field meanings are documented in docs/simulator.md.
import type { WorkerMessage, WorkerStats } from '../fleet/protocol.js'
import type { Scenario } from '../scenario/resolve-scenario.js'
import { computeLoss } from '../stats/loss.js'
import type { LatencySummary } from '../stats/histogram.js'
import { mergeSnapshots } from '../stats/sequence-tracker.js'
import type { TrackerSnapshot } from '../stats/sequence-tracker.js'
import type { SourceSendRecord } from '../stats/send-ledger.js'

export type StopReason = 'duration' | 'count' | 'stopped' | 'error'

export interface StreamReport {
  /** "observer-<n>", or "$share/<group>" for observers sharing one subscription. */
  name: string
  observers: number
  received: number
  unique: number
  expected: number
  lost: number
  duplicates: number
  outOfOrder: number
  unexpected: number
  worst: Array<{ source: string; lost: number; firstLostSeq: number }>
}

export interface AssertionResult {
  clause: string
  actual: number
  ok: boolean
}

export interface Report {
  version: 1
  scenario: string
  run: number
  seed: number
  broker: { url: string; protocol: number }
  startedAt: string
  endedAt: string
  stoppedBy: StopReason
  /** Wall time from the start of the ramp-up until publishing stopped, ms. */
  publishMs: number
  /** Time spent waiting for stragglers after publishing stopped, ms. */
  drainMs: number
  devices: {
    total: number
    connectedPeak: number
    connects: number
    disconnects: number
    churned: number
    done: number
    skippedOfflineTicks: number
    connectFailures: Record<string, number>
    connectFailuresTotal: number
    clientErrors: Record<string, number>
    connectMs: LatencySummary
  }
  messages: {
    sent: number
    acked: number
    failed: number
    unacked: number
    publishFailures: Record<string, number>
    expected: number
    received: number
    unique: number
    lost: number
    duplicates: number
    outOfOrder: number
    unexpected: number
    foreign: number
    /** lost / expected, 0..1. */
    lossRatio: number
    /** Publishes per second over the publishing phase. */
    rateOut: number
    /** Unique deliveries per second, from the first publish to the last delivery. */
    rateIn: number
  }
  latencyMs: LatencySummary
  streams: StreamReport[]
  commands:
    | { sent: number; answered: number; timedOut: number; failed: number; devicesAnswered: number; latencyMs: LatencySummary }
    | undefined
  simulator: {
    workers: number
    cores: number
    cpuUserMs: number
    cpuSystemMs: number
    /** Simulator CPU over the run, in % of one core (200 = two cores busy). */
    cpuPercent: number
    /** The same in % of the whole machine. */
    cpuPercentOfMachine: number
    eventLoopDelayMaxMs: number
    eventLoopDelayP99Ms: number
    rssMb: number
  }
  assertions?: AssertionResult[]
}

type FinalMessage = Extract<WorkerMessage, { type: 'final' }>

export interface ReportInputs {
  scenario: Scenario
  run: number
  startedAt: number
  goAt: number
  publishEndedAt: number
  endedAt: number
  stoppedBy: StopReason
  finals: FinalMessage[]
  connectedPeak: number
  latencyMs: LatencySummary
  connectMs: LatencySummary
  commandLatencyMs: LatencySummary
  commanderTotals: { sent: number; answered: number; timedOut: number; failed: number } | undefined
  cpu: { userMs: number; systemMs: number; wallMs: number; cores: number }
  eventLoopDelayMaxMs: number
  eventLoopDelayP99Ms: number
  workers: number
}

function sumBy<T>(items: readonly T[], pick: (item: T) => number): number {
  return items.reduce((sum, item) => sum + pick(item), 0)
}

function mergeCounts(tables: ReadonlyArray<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const table of tables) for (const [k, v] of Object.entries(table)) out[k] = (out[k] ?? 0) + v
  return out
}

/** Groups observers into observation streams: one per observer, or one for a shared group. */
function observationStreams(scenario: Scenario, finals: readonly FinalMessage[]): Array<{ name: string; snapshots: TrackerSnapshot[] }> {
  const all = finals.flatMap((f) => f.observers).sort((a, b) => a.index - b.index)
  if (scenario.observers.shared) return all.length === 0 ? [] : [{ name: `$share/${scenario.observers.shared}`, snapshots: all.map((o) => o.snapshot) }]
  return all.map((o) => ({ name: `observer-${o.index}`, snapshots: [o.snapshot] }))
}

export function buildReport(input: ReportInputs): Report {
  const { scenario, finals } = input
  const stats: WorkerStats[] = finals.map((f) => f.stats)
  const sent = new Map<string, SourceSendRecord>()
  for (const f of finals) for (const [k, v] of f.send.sources) sent.set(k, v)

  const streams: StreamReport[] = observationStreams(scenario, finals).map(({ name, snapshots }) => {
    const merged = snapshots.length === 1 ? (snapshots[0] as TrackerSnapshot) : mergeSnapshots(snapshots)
    const loss = computeLoss(sent, merged.sources)
    return {
      name,
      observers: snapshots.length,
      received: merged.received,
      unique: merged.unique,
      expected: loss.expected,
      lost: loss.lost,
      duplicates: merged.duplicates,
      outOfOrder: merged.outOfOrder,
      unexpected: loss.unexpected,
      worst: loss.worst,
    }
  })

  const expected = sumBy(streams, (s) => s.expected)
  const lost = sumBy(streams, (s) => s.lost)
  const unique = sumBy(streams, (s) => s.unique)
  const publishMs = Math.max(1, input.publishEndedAt - input.goAt)
  const lastReceiveAt = Math.max(0, ...stats.flatMap((s) => s.observers.map((o) => o.lastReceiveAt)))
  const connectFailures = mergeCounts(stats.map((s) => s.connectFailures))
  const cpuMs = input.cpu.userMs + input.cpu.systemMs

  return {
    version: 1,
    scenario: scenario.name,
    run: input.run,
    seed: scenario.seed,
    broker: { url: scenario.broker.url, protocol: scenario.broker.protocol },
    startedAt: new Date(input.startedAt).toISOString(),
    endedAt: new Date(input.endedAt).toISOString(),
    stoppedBy: input.stoppedBy,
    publishMs: Math.round(publishMs),
    drainMs: Math.round(input.endedAt - input.publishEndedAt),
    devices: {
      total: sumBy(stats, (s) => s.devicesTotal),
      connectedPeak: input.connectedPeak,
      connects: sumBy(stats, (s) => s.connects),
      disconnects: sumBy(stats, (s) => s.disconnects),
      churned: sumBy(stats, (s) => s.churned),
      done: sumBy(stats, (s) => s.devicesDone),
      skippedOfflineTicks: sumBy(stats, (s) => s.skippedOffline),
      connectFailures,
      connectFailuresTotal: sumBy(Object.values(connectFailures), (v) => v),
      clientErrors: mergeCounts(stats.map((s) => s.clientErrors)),
      connectMs: input.connectMs,
    },
    messages: {
      sent: sumBy(finals, (f) => f.send.sent),
      acked: sumBy(finals, (f) => f.send.acked),
      failed: sumBy(finals, (f) => f.send.failed),
      unacked: sumBy(finals, (f) => f.send.pending),
      publishFailures: mergeCounts(finals.map((f) => f.send.failures)),
      expected,
      received: sumBy(streams, (s) => s.received),
      unique,
      lost,
      duplicates: sumBy(streams, (s) => s.duplicates),
      outOfOrder: sumBy(streams, (s) => s.outOfOrder),
      unexpected: sumBy(streams, (s) => s.unexpected),
      foreign: sumBy(stats, (s) => sumBy(s.observers, (o) => o.foreign)),
      lossRatio: expected === 0 ? 0 : lost / expected,
      rateOut: sumBy(finals, (f) => f.send.sent) / (publishMs / 1000),
      rateIn: lastReceiveAt > input.goAt ? unique / ((lastReceiveAt - input.goAt) / 1000) : 0,
    },
    latencyMs: input.latencyMs,
    streams,
    commands: input.commanderTotals
      ? { ...input.commanderTotals, devicesAnswered: sumBy(stats, (s) => s.commandsAnswered), latencyMs: input.commandLatencyMs }
      : undefined,
    simulator: {
      workers: input.workers,
      cores: input.cpu.cores,
      cpuUserMs: Math.round(input.cpu.userMs),
      cpuSystemMs: Math.round(input.cpu.systemMs),
      cpuPercent: Math.round((cpuMs / Math.max(1, input.cpu.wallMs)) * 1000) / 10,
      cpuPercentOfMachine: Math.round((cpuMs / Math.max(1, input.cpu.wallMs) / input.cpu.cores) * 1000) / 10,
      eventLoopDelayMaxMs: Math.round(input.eventLoopDelayMaxMs * 10) / 10,
      eventLoopDelayP99Ms: Math.round(input.eventLoopDelayP99Ms * 10) / 10,
      rssMb: Math.round(process.memoryUsage().rss / 1048576),
    },
  }
}
