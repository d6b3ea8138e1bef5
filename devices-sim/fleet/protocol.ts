// Messages between the coordinator and its workers (worker threads, or the same thread when
// workers = 0). Everything here must survive structured cloning: plain data, Maps, typed arrays.
import type { Scenario } from '../scenario/resolve-scenario.js'
import type { SendSnapshot } from '../stats/send-ledger.js'
import type { TrackerSnapshot } from '../stats/sequence-tracker.js'

export interface DeviceRange {
  profile: number
  /** Device indices [from, to) within the profile. */
  from: number
  to: number
}

export interface WorkerPlan {
  worker: number
  workers: number
  run: number
  scenario: Scenario
  devices: DeviceRange[]
  /** Global observer indices this worker hosts. */
  observers: number[]
  commander: boolean
}

export type CoordinatorMessage =
  | { type: 'go' }
  | { type: 'start-commands' }
  | { type: 'poll' }
  | { type: 'stop-publishing' }
  | { type: 'finish' }

export interface ObserverCounters {
  index: number
  received: number
  unique: number
  duplicates: number
  outOfOrder: number
  foreign: number
  /** Epoch ms of the last simulator message received, 0 when none. */
  lastReceiveAt: number
}

export interface CommanderCounters {
  sent: number
  answered: number
  timedOut: number
  failed: number
  /** Interval histogram of round-trip times since the previous stats message. */
  latency: string
}

export interface WorkerStats {
  worker: number
  connected: number
  connects: number
  disconnects: number
  churned: number
  devicesDone: number
  devicesTotal: number
  skippedOffline: number
  commandsAnswered: number
  connectFailures: Record<string, number>
  clientErrors: Record<string, number>
  sent: number
  acked: number
  failed: number
  pending: number
  publishFailures: Record<string, number>
  observers: ObserverCounters[]
  /** Interval histograms (HdrHistogram compressed base64) since the previous stats message. */
  latency: string
  connectTimes: string
  commander: CommanderCounters | undefined
  eventLoopDelayP99Ms: number
  eventLoopDelayMaxMs: number
}

export interface PublishStoppedInfo {
  /** Messages observers should receive from this worker's devices, per observation stream. */
  expected: number
  /** Messages excluded from "expected" (unacknowledged, failed, or on unobserved topics). */
  notExpected: number
}

export type WorkerMessage =
  | { type: 'observers-ready'; worker: number }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'publish-stopped'; worker: number; info: PublishStoppedInfo }
  | {
      type: 'final'
      worker: number
      stats: WorkerStats
      send: SendSnapshot
      observers: Array<{ index: number; snapshot: TrackerSnapshot }>
    }
  | { type: 'fatal'; worker: number; message: string }
