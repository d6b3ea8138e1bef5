// Library API of the device fleet simulator.
//
//   const scenario = resolveScenario({ broker: { url }, duration: '10s', profiles: [...] })
//   const report = await runScenario(scenario)
//   // or, to stop early:  const run = startFleet(scenario); ...; run.stop(); await run.report
import { startFleet } from './fleet/fleet-run.js'
import type { FleetRunOptions } from './fleet/fleet-run.js'
import type { Report } from './report/report.js'
import { resolveScenario } from './scenario/resolve-scenario.js'
import type { Scenario } from './scenario/resolve-scenario.js'

export { startFleet, splitDevices, FleetError } from './fleet/fleet-run.js'
export type { FleetRun, FleetRunOptions, FleetPhase, ProgressSample } from './fleet/fleet-run.js'
export { resolveScenario } from './scenario/resolve-scenario.js'
export type { Scenario, Profile, PublishStream, QoS } from './scenario/resolve-scenario.js'
export { loadScenarioFile, parseScenarioText } from './scenario/load-scenario.js'
export { ScenarioError } from './scenario/scenario-error.js'
export type { ScenarioInput } from './scenario/schema.js'
export type { Report, StreamReport, AssertionResult, StopReason } from './report/report.js'
export { formatSummary } from './report/format-summary.js'
export { parseThresholds, evaluateThresholds, ThresholdError } from './report/thresholds.js'
export type { Threshold } from './report/thresholds.js'
export { readEnvelope } from './payload/envelope.js'
export type { Envelope } from './payload/envelope.js'

/** Runs a scenario (resolved, or raw data that is validated first) to completion. */
export async function runScenario(scenario: Scenario | unknown, options: FleetRunOptions & { signal?: AbortSignal } = {}): Promise<Report> {
  const resolved = isResolved(scenario) ? scenario : resolveScenario(scenario)
  const run = startFleet(resolved, options)
  if (options.signal) {
    if (options.signal.aborted) run.stop()
    else options.signal.addEventListener('abort', () => run.stop(), { once: true })
  }
  return run.report
}

function isResolved(value: unknown): value is Scenario {
  // resolveScenario freezes its result and always sets a numeric seed.
  return typeof value === 'object' && value !== null && Object.isFrozen(value) && typeof (value as { seed?: unknown }).seed === 'number'
}
