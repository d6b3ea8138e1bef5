#!/usr/bin/env node
// npm run bench: the same scenarios against mqlite (memory and SQLite stores) and Mosquitto,
// interleaved and repeated, medians side by side with ratios against Mosquitto.
import { spawnSync } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { Command } from 'commander'
import { positiveInteger } from './cli-options.js'
import { commandExists, mosquittoTarget, mqliteTarget } from './brokers.js'
import { clusterTarget } from './cluster.js'
import type { BrokerTarget } from './brokers.js'
import { measureSyscallMicros } from './host.js'
import { SCENARIOS } from './scenarios.js'
import { formatTable, medians } from './table.js'
import type { RunRecord } from './table.js'

interface BenchFlags {
  quick?: boolean
  only?: string
  json?: string
  repetitions?: number
  brokers?: string
  pin: boolean
  timeout: number
  mqliteNodeOptions?: string
}

const program = new Command('mqlite-bench')
  .description('Benchmark mqlite against Mosquitto side by side.')
  .option('--quick', 'small counts and 1 repetition (a smoke run)')
  .option('--only <scenarios>', `comma-separated subset of: ${SCENARIOS.map((s) => s.name).join(', ')}`)
  .option('--repetitions <n>', 'repetitions per scenario and broker (default 3, 1 with --quick)', positiveInteger)
  .option('--brokers <names>', 'comma-separated subset of: mosquitto, mqlite-memory, mqlite-memory+metrics, mqlite-sqlite, mqlite-cluster-1, mqlite-cluster-2, mqlite-cluster-3 (the clusters need redis-server and run only the cluster scenario)')
  .option('--no-pin', 'do not pin broker and load generator to different cores')
  .option('--timeout <seconds>', 'per-run time limit', positiveInteger, 300)
  .option('--json <file>', 'write every run and the medians as JSON')
  .option('--mqlite-node-options <flags>', 'Node/V8 flags for the mqlite processes only, e.g. "--max-semi-space-size=32"')

function pinSelf(core: number): boolean {
  // -a: every thread of this process, including libuv's pool.
  return spawnSync('taskset', ['-a', '-cp', String(core), String(process.pid)], { stdio: 'ignore' }).status === 0
}

async function withTimeout<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} timed out after ${seconds}s`)), seconds * 1000)))])
  } finally {
    clearTimeout(timer)
  }
}

async function main(): Promise<number> {
  program.parse(process.argv)
  const flags = program.opts<BenchFlags>()
  const quick = flags.quick === true
  const repetitions = flags.repetitions ?? (quick ? 1 : 3)
  const only = flags.only?.split(',').map((s) => s.trim()).filter(Boolean)
  const unknown = only?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? []
  if (unknown.length > 0) {
    process.stderr.write(`unknown scenario(s): ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}\n`)
    return 2
  }
  const scenarios = only ? SCENARIOS.filter((s) => only.includes(s.name)) : SCENARIOS

  const pin = flags.pin && availableParallelism() >= 2 && commandExists('taskset')
  const pinned = pin && pinSelf(1)
  const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
  const nodeFlags = flags.mqliteNodeOptions?.split(/\s+/).filter(Boolean) ?? []
  const available: BrokerTarget[] = [
    ...(commandExists('mosquitto') ? [mosquittoTarget(pinned)] : []),
    mqliteTarget('memory', pinned, repoRoot, false, nodeFlags),
    mqliteTarget('memory', pinned, repoRoot, true, nodeFlags),
    mqliteTarget('sqlite', pinned, repoRoot, false, nodeFlags),
    ...(commandExists('redis-server') ? [1, 2, 3].map((n) => clusterTarget(n, pinned, repoRoot, nodeFlags)) : []),
  ]
  const wanted = flags.brokers?.split(',').map((s) => s.trim())
  const targets = wanted ? available.filter((t) => wanted.includes(t.name)) : available
  if (targets.length === 0) {
    process.stderr.write(`no brokers to run (available: ${available.map((t) => t.name).join(', ')})\n`)
    return 2
  }
  const brokerNames = targets.map((t) => t.name)
  const syscallMicros = measureSyscallMicros(200_000, pinned ? 0 : undefined)
  const syscallNote = syscallMicros === undefined ? 'system call cost unknown (dd failed)' : `a system call takes ${syscallMicros.toFixed(2)} µs here (dd)`
  process.stderr.write(
    `bench: ${scenarios.length} scenario(s) x ${targets.length} broker(s) x ${repetitions} repetition(s)${quick ? ' (quick)' : ''}; ` +
      `${pinned ? 'brokers on core 0, load on core 1' : 'not pinned'}; ${syscallNote}${commandExists('mosquitto') ? '' : '; mosquitto not found, no ratios'}\n`,
  )

  const records: RunRecord[] = []
  const startedAt = new Date().toISOString()
  let interrupted = false
  process.once('SIGINT', () => {
    interrupted = true
    process.stderr.write('\ninterrupted: finishing the current run, then reporting\n')
  })

  outer: for (let rep = 1; rep <= repetitions; rep++) {
    for (const scenario of scenarios) {
      // Rotate the broker order each repetition so no broker always runs first (warm caches,
      // thermal state) -- the interleaving the medians rely on.
      const order = targets.map((_, i) => targets[(i + rep - 1) % targets.length] as BrokerTarget)
      for (const target of order) {
        if (interrupted) break outer
        // a cluster is measured on its own scenario; the others are single-broker questions
        if (target.name.startsWith('mqlite-cluster') !== (scenario.name === 'cluster') && target.name.startsWith('mqlite-cluster')) continue
        const record: RunRecord = { scenario: scenario.name, broker: target.name, repetition: rep, metrics: [], notes: [], loadCpuPercent: Number.NaN }
        let broker
        try {
          broker = await target.start()
          const cpu = process.cpuUsage()
          const t0 = performance.now()
          const result = await withTimeout(scenario.run(broker, quick), flags.timeout, `${scenario.name} on ${target.name}`)
          const used = process.cpuUsage(cpu)
          record.loadCpuPercent = ((used.user + used.system) / 1000 / (performance.now() - t0)) * 100
          record.metrics = result.metrics
          record.notes = result.notes
        } catch (error) {
          record.error = (error as Error).message
        } finally {
          await broker?.stop()
        }
        records.push(record)
        const summary = record.error ? `ERROR ${record.error}` : record.metrics.map((m) => `${m.label} ${Math.round(m.value * 100) / 100}`).join(', ')
        process.stderr.write(`[${rep}/${repetitions}] ${scenario.name.padEnd(11)} ${target.name.padEnd(14)} ${summary}${record.notes.length ? ` (${record.notes.join('; ')})` : ''} load cpu ${Math.round(record.loadCpuPercent)}%\n`)
      }
    }
  }

  const rows = medians(records, brokerNames)
  process.stdout.write(`\n${formatTable(rows, brokerNames)}\n`)
  process.stdout.write(
    `\nmedians of ${repetitions} run(s); (x mosquitto) = median of the ratios repetition by repetition; load cpu = load generator, % of one core (near 100% means the load generator, not the broker, was the limit); ` +
      `${syscallNote}: Mosquitto makes one or more per packet, mqlite about one per connection per event-loop turn, so the ratios move with it\n`,
  )
  if (nodeFlags.length > 0) process.stdout.write(`mqlite ran with node ${nodeFlags.join(' ')}\n`)
  if (flags.json) await writeFile(flags.json, `${JSON.stringify({ startedAt, quick, repetitions, pinned, mqliteNodeFlags: nodeFlags, syscallMicros, brokers: brokerNames, medians: rows, runs: records }, null, 2)}\n`)
  return records.some((r) => r.error) ? 1 : 0
}

main().then(
  (code) => {
    process.exitCode = code
    setTimeout(() => process.exit(code), 3000).unref()
  },
  (error: unknown) => {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`)
    process.exit(3)
  },
)
