#!/usr/bin/env node
// npm run bench:instructions: the instructions a broker executes per message, counted by
// valgrind's callgrind. Unlike the bench's times, the count hardly depends on what else the
// machine runs, so small differences (a hook, a patch) show on a shared, noisy host.
//
// Each broker runs the scenario twice in fresh processes, with half the messages and with all of
// them; the difference divided by the extra messages is the cost of a message once warm
// (start-up, connections and most of the JIT's warm-up cancel out). Instructions are not time:
// cache misses and system calls (the clock, socket I/O in the kernel) are not in them.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, InvalidArgumentError } from 'commander'
import { positiveInteger } from './cli-options.js'
import { commandExists, mosquittoTarget, mqliteTarget, type BrokerTarget, type LaunchOptions } from './brokers.js'
import { awaitReceived, connectRaw } from './raw-mqtt.js'
import type { QoS } from './load.js'

const PAYLOAD_64 = Buffer.alloc(64, 0x61)

interface InstructionScenario {
  /** what one counted unit is */
  unit: 'message' | 'delivery'
  units: 'messages' | 'deliveries'
  /** sends `units` units' worth of traffic to the broker on `port` and waits for all of it */
  run(port: number, units: number, publishers: number): Promise<void>
}

/** `session`: the subscriber keeps a persistent session, so every copy is stored for it first. */
function fanIn(qos: QoS, session = false): InstructionScenario {
  return {
    unit: 'message',
    units: 'messages',
    async run(port, units, publishers) {
      const sub = await connectRaw(port, `instructions-sub-${qos}${session ? '-session' : ''}`, { clean: !session })
      const pubs = await Promise.all(Array.from({ length: publishers }, (_, i) => connectRaw(port, `instructions-pub-${qos}-${i}`)))
      try {
        await sub.subscribe('bench/fanin/#', qos)
        await Promise.all(pubs.map((p, i) => p.flood(`bench/fanin/${i}`, PAYLOAD_64, qos, units / publishers, 1000)))
        const { received } = await awaitReceived([sub], units, 30_000)
        if (received < units) throw new Error(`received ${received} of ${units}`)
      } finally {
        await Promise.all([sub, ...pubs].map((c) => c.close()))
      }
    },
  }
}

const SUBSCRIBERS = 100

const fanOut: InstructionScenario = {
  unit: 'delivery',
  units: 'deliveries',
  async run(port, units) {
    const subs = []
    for (let i = 0; i < SUBSCRIBERS; i++) subs.push(await connectRaw(port, `instructions-fanout-${i}`))
    const pub = await connectRaw(port, 'instructions-fanout-pub')
    try {
      for (const s of subs) await s.subscribe('bench/fanout', 0)
      await pub.flood('bench/fanout', PAYLOAD_64, 0, units / SUBSCRIBERS, 1000)
      const { received } = await awaitReceived(subs, units, 30_000)
      if (received < units) throw new Error(`received ${received} of ${units}`)
    } finally {
      await Promise.all([pub, ...subs].map((c) => c.close()))
    }
  },
}

const SCENARIOS: Record<string, InstructionScenario> = {
  'fanin-qos0': fanIn(0),
  'fanin-qos1': fanIn(1),
  'fanin-qos1-session': fanIn(1, true),
  fanout: fanOut,
}

const BROKERS = ['mosquitto', 'mqlite-memory', 'mqlite-memory+metrics', 'mqlite-sqlite'] as const

function target(name: (typeof BROKERS)[number], repoRoot: string, seed: number | undefined, options: LaunchOptions): BrokerTarget {
  if (name === 'mosquitto') return mosquittoTarget(false, options)
  // --predictable: V8 compiles and collects garbage on the main thread, at points that depend on
  // the program alone, not on thread timing: whole runs then agree within about 1%, not 4%
  const nodeFlags = seed === undefined ? ['--predictable'] : ['--predictable', `--random-seed=${seed}`]
  return mqliteTarget(name === 'mqlite-sqlite' ? 'sqlite' : 'memory', false, repoRoot, name === 'mqlite-memory+metrics', nodeFlags, options)
}

/** The broker's total instructions for one run of `units`, from a fresh process under callgrind. */
async function instructions(name: (typeof BROKERS)[number], scenario: InstructionScenario, units: number, publishers: number, seed: number | undefined, repoRoot: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'mqlite-callgrind-'))
  const out = join(dir, 'callgrind.out')
  // Mosquitto started as root runs as its own user by the time callgrind writes the file that
  // valgrind opened at start: the file must be writable by anyone
  chmodSync(dir, 0o755)
  writeFileSync(out, '')
  chmodSync(out, 0o666)
  try {
    // valgrind runs a program some 50 times slower: it starts, and writes its counts at exit, slowly
    const broker = await target(name, repoRoot, seed, {
      wrapper: ['valgrind', '--tool=callgrind', `--callgrind-out-file=${out}`],
      startTimeoutMs: 300_000,
      stopTimeoutMs: 120_000,
    }).start()
    try {
      await scenario.run(broker.port, units, publishers)
    } finally {
      await broker.stop()
    }
    const summary = /^summary:\s+(\d+)/m.exec(readFileSync(out, 'utf8'))
    if (!summary) throw new Error(`${name}: callgrind wrote no summary`)
    return Number(summary[1])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const program = new Command('mqlite-bench-instructions')
  .description('Instructions per message of each broker, counted by valgrind (callgrind).')
  .option('--scenario <name>', `one of: ${Object.keys(SCENARIOS).join(', ')}`, 'fanin-qos0')
  .option('--units <n>', 'messages (fan-in) or deliveries (fan-out) of the longer run; the shorter runs half', positiveInteger, 400_000)
  .option('--brokers <names>', `comma-separated subset of: ${BROKERS.join(', ')}`, BROKERS.join(','))
  // One publisher's socket is always full under callgrind, so every read brings the same bytes:
  // runs of one build then repeat to about 0.1%. Ten interleave differently from run to run.
  .option('--publishers <n>', 'raw publishers of the fan-in scenarios (the bench uses 10; 1 makes runs repeat closely)', positiveInteger, 10)
  // A build's count repeats, but another build (or --units) can land V8's optimizations at other
  // points and move it by a few percent either way; V8's random seed moves it the same way, so
  // the mean over a few seeds is what two builds are compared by.
  .option('--seeds <list>', 'comma-separated V8 random seeds: each mqlite broker runs once per seed, and the figures are their means', parseSeeds)

async function main(): Promise<number> {
  program.parse(process.argv)
  const flags = program.opts<{ scenario: string; units: number; brokers: string; publishers: number; seeds?: number[] }>()
  const scenario = SCENARIOS[flags.scenario]
  if (!scenario) {
    process.stderr.write(`unknown scenario ${flags.scenario}; known: ${Object.keys(SCENARIOS).join(', ')}\n`)
    return 2
  }
  const multiple = 2 * SUBSCRIBERS * flags.publishers
  if (flags.units % multiple !== 0) {
    process.stderr.write(`--units must be a multiple of ${multiple}\n`)
    return 2
  }
  if (!commandExists('valgrind')) {
    process.stderr.write('valgrind is not installed (Debian: apt-get install valgrind)\n')
    return 2
  }
  const names = flags.brokers.split(',').map((s) => s.trim())
  const unknown = names.filter((n) => !(BROKERS as readonly string[]).includes(n) || (n === 'mosquitto' && !commandExists('mosquitto')))
  if (unknown.length > 0) {
    process.stderr.write(`unknown or unavailable broker(s): ${unknown.join(', ')}\n`)
    return 2
  }
  const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
  const half = flags.units / 2
  const counted = new Map<string, { perUnit: number; long: number }>()
  for (const name of names as Array<(typeof BROKERS)[number]>) {
    const seeds = name === 'mosquitto' || flags.seeds === undefined ? [undefined] : flags.seeds
    const perUnits: number[] = []
    const longs: number[] = []
    for (const seed of seeds) {
      const short = await instructions(name, scenario, half, flags.publishers, seed, repoRoot)
      const long = await instructions(name, scenario, flags.units, flags.publishers, seed, repoRoot)
      const value = (long - short) / (flags.units - half)
      perUnits.push(value)
      longs.push(long)
      // start-up varies by a few hundred million instructions between runs
      if (long - short < short / 5) process.stderr.write(`${name}: the extra ${half} ${scenario.units} are not much more than start-up; raise --units for a figure that means something\n`)
      const seeded = seed === undefined ? '' : ` (seed ${seed})`
      process.stderr.write(`${name}${seeded}: ${short} instructions for ${half} ${scenario.units}, ${long} for ${flags.units}: ${Math.round(value)} per ${scenario.unit}\n`)
    }
    counted.set(name, { perUnit: mean(perUnits), long: mean(longs) })
  }
  // Against mqlite-memory (what metrics or a store add), not Mosquitto: Mosquitto spends its time
  // in system calls, whose kernel side no instruction count here includes.
  // Two figures: per unit (start-up left out, but the difference of two runs, so it moves by ~3%
  // between invocations) and the whole longer run (start-up in, steady to about 1%).
  const reference = counted.get('mqlite-memory')
  const against = (name: string, value: number, of: number | undefined): string =>
    of !== undefined && name.startsWith('mqlite-') && name !== 'mqlite-memory' ? ` (${(value / of).toFixed(3)}x mqlite-memory)` : ''
  const over = flags.seeds === undefined ? '' : `; mqlite: means over V8 seeds ${flags.seeds.join(', ')}`
  process.stdout.write(`\n${flags.scenario}: broker instructions per ${scenario.unit} (callgrind; the difference of runs of ${half} and ${flags.units} ${scenario.units}), and in the whole run of ${flags.units}${over}\n`)
  for (const [name, { perUnit, long }] of counted) {
    const unit = `${Math.round(perUnit).toLocaleString('en-US').padStart(9)}${against(name, perUnit, reference?.perUnit)}`
    process.stdout.write(`  ${name.padEnd(22)} ${unit.padEnd(37)} whole run ${(long / 1e9).toFixed(2)} billion${against(name, long, reference?.long)}\n`)
  }
  return 0
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length
}

function parseSeeds(text: string): number[] {
  const seeds = text.split(',').map((s) => Number(s.trim()))
  if (seeds.some((seed) => !Number.isInteger(seed) || seed === 0)) {
    throw new InvalidArgumentError('expected comma-separated non-zero integers, e.g. 1,2,3')
  }
  return seeds
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`)
    process.exit(3)
  },
)
