#!/usr/bin/env node
// mqlite-sim: process concerns only (flags, files, signals, exit codes). The work happens in
// the library (index.ts).
//
// Exit codes: 0 ok, 1 an --assert threshold failed, 2 bad usage (flags, scenario file, --assert
// syntax), 3 the run itself failed (broker unreachable, worker crash).
import { writeFile } from 'node:fs/promises'
import { Command, InvalidArgumentError, Option } from 'commander'
import { FleetError, startFleet } from './fleet/fleet-run.js'
import { createProgressPrinter } from './output/progress.js'
import { formatSummary } from './report/format-summary.js'
import { evaluateThresholds, parseThresholds, ThresholdError } from './report/thresholds.js'
import type { Threshold } from './report/thresholds.js'
import { applyFlagOverrides, scenarioFromFlags } from './scenario/from-flags.js'
import type { FleetFlags } from './scenario/from-flags.js'
import { resolveScenario } from './scenario/resolve-scenario.js'
import type { Scenario } from './scenario/resolve-scenario.js'
import { ScenarioError } from './scenario/scenario-error.js'
import { loadScenarioFile } from './scenario/load-scenario.js'

interface CliFlags extends FleetFlags {
  scenario?: string
  json?: string
  assert?: string
  quiet?: boolean
}

const integer = (name: string) => (value: string): string => {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be a non-negative integer`)
  return value
}

function buildProgram(): Command {
  return new Command('mqlite-sim')
    .description('Simulate a fleet of MQTT devices against any broker and measure delivery, loss and latency.')
    .option('-s, --scenario <file>', 'scenario file (YAML or JSON); flags below override its broker settings')
    .option('--url <url>', 'broker URL: mqtt://, mqtts://, ws://, wss://', undefined)
    .addOption(new Option('--protocol <version>', 'MQTT protocol version: 5, 4 (3.1.1) or 3 (3.1)').choices(['3', '4', '5']))
    .option('--username <name>', 'username')
    .option('--password <password>', 'password')
    .option('--ca <file>', 'CA certificate (PEM) for mqtts:// and wss://')
    .option('--cert <file>', 'client certificate (PEM)')
    .option('--key <file>', 'client private key (PEM)')
    .option('--insecure', 'do not verify the broker certificate')
    .option('--devices <n>', 'number of devices (default 10)', integer('--devices'))
    .option('--rate <rate>', 'messages per device, e.g. 1/s, 30/min, 1/5s (default 1/s)')
    .addOption(new Option('--qos <qos>', 'QoS of telemetry (default 0)').choices(['0', '1', '2']))
    .option('--topic <template>', "telemetry topic; {deviceId}, {index}, {seq}, {profile}, {run} (default 'sim/{deviceId}/telemetry')")
    .option('--client-id <pattern>', "client id pattern; must contain {index} (default 'sim-{index}')")
    .option('--connect-rate <rate>', 'connection ramp-up, e.g. 500/s (default: unlimited)')
    .option('--payload-size <bytes>', 'binary payloads of this size instead of JSON', integer('--payload-size'))
    .option('--retain', 'publish telemetry retained')
    .option('--count <n>', 'messages per device, then stop', integer('--count'))
    .option('--duration <duration>', 'publishing time, e.g. 30s, 5m (default 10s without --count)')
    .option('--jitter <jitter>', 'publish time jitter, e.g. 10% or 50ms')
    .option('--persistent', 'persistent sessions (clean=false, 1h session expiry)')
    .option('--observers <n>', 'observer subscribers (default 1)', integer('--observers'))
    .option('--shared <group>', 'observers share one subscription ($share/<group>/...)')
    .option('--grace <duration>', 'wait for late messages after publishing stops (default 5s)')
    .option('--seed <n>', 'seed for payload values and schedules', integer('--seed'))
    .option('--workers <n>', 'worker threads (default: CPU count; 0 = single thread)', integer('--workers'))
    .option('--json <file>', 'write the full report as JSON')
    .option('--assert <thresholds>', "fail (exit 1) unless e.g. 'p99<50ms,loss=0,rate>=900' holds")
    .option('-q, --quiet', 'no progress output')
    .showHelpAfterError()
}

function loadScenario(flags: CliFlags): Promise<Scenario> {
  if (!flags.scenario) return Promise.resolve(resolveScenario(scenarioFromFlags(flags), 'command-line flags'))
  return loadScenarioFile(flags.scenario, { transform: (raw) => applyFlagOverrides(raw, flags) })
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram()
  program.exitOverride()
  try {
    program.parse(argv)
  } catch (error) {
    const code = (error as { exitCode?: number }).exitCode ?? 2
    return code === 0 ? 0 : 2
  }
  const flags = program.opts<CliFlags>()

  let thresholds: Threshold[] = []
  let scenario: Scenario
  try {
    if (flags.assert !== undefined) thresholds = parseThresholds(flags.assert)
    scenario = await loadScenario(flags)
  } catch (error) {
    if (error instanceof ScenarioError || error instanceof ThresholdError) {
      process.stderr.write(`${error.message}\n`)
      return 2
    }
    throw error
  }

  const progress = createProgressPrinter(process.stderr)
  const fleet = startFleet(scenario, { onProgress: flags.quiet ? undefined : (sample) => progress.update(sample) })
  let interrupts = 0
  const onSignal = (): void => {
    interrupts++
    if (interrupts === 1) {
      progress.close()
      process.stderr.write('stopping: draining and reporting (Ctrl-C again to abort)\n')
      fleet.stop()
    } else {
      process.stderr.write('aborted\n')
      process.exit(130)
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    const report = await fleet.report
    progress.close()
    if (thresholds.length > 0) report.assertions = evaluateThresholds(thresholds, report)
    process.stdout.write(`${formatSummary(report)}\n`)
    if (flags.json) await writeFile(flags.json, `${JSON.stringify(report, null, 2)}\n`)
    return report.assertions?.some((a) => !a.ok) ? 1 : 0
  } catch (error) {
    progress.close()
    if (error instanceof FleetError) {
      process.stderr.write(`run failed: ${error.message}\n`)
      return 3
    }
    throw error
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code
    // Lingering sockets of a failed run must not keep the CLI alive.
    setTimeout(() => process.exit(code), 2000).unref()
  },
  (error: unknown) => {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`)
    process.exit(3)
  },
)
