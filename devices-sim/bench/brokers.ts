// Brokers under test, each started as a child process on a port we pick, pinned to core 0 when
// taskset exists, and considered ready once its port accepts TCP connections.
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface RunningBroker {
  name: string
  url: string
  port: number
  pid: number
  /** every node's URL (a cluster); absent for a single broker */
  urls?: string[]
  /** Redis commands processed so far (a cluster), for commands per message */
  redisCommands?(): Promise<number>
  /** Resident memory of the broker process, in KiB (from /proc). */
  rssKiB(): number
  /** CPU time the broker process (all its threads) has used so far, in seconds (from /proc). */
  cpuSeconds(): number
  /** Bytes of the broker's data files now (0 for a broker that keeps nothing on disk). */
  diskBytes?(): number
  stop(): Promise<void>
}

export interface BrokerTarget {
  name: string
  start(): Promise<RunningBroker>
}

export function commandExists(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

export function readRssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (!match) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(match[1])
}

/** Clock ticks per second of /proc/<pid>/stat times: USER_HZ, 100 on Linux. */
const USER_HZ = 100

export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // fields after the parenthesised command name (which may contain spaces): utime is the 14th
  // field of the line, stime the 15th
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** Total size of the files below `dir`. */
function directoryBytes(dir: string): number {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    try {
      total += statSync(join(entry.parentPath, entry.name)).size
    } catch {
      // deleted meanwhile (a checkpointed WAL, a temporary file)
    }
  }
  return total
}

/**
 * How a broker process is started and stopped: `wrapper` goes in front of its command (a
 * profiler such as valgrind), `startTimeoutMs` bounds the wait for its port.
 */
export interface LaunchOptions {
  wrapper?: readonly string[]
  startTimeoutMs?: number
  /** how long stop() waits after SIGTERM before SIGKILL */
  stopTimeoutMs?: number
}

/** Spawns, then waits for the port, racing an early exit of the child (which fails fast). */
export async function launch(name: string, command: string, args: string[], port: number, cleanup: () => void, pin: boolean, dataDir?: string, options: LaunchOptions = {}): Promise<RunningBroker> {
  const wrapped = [...(options.wrapper ?? []), command, ...args]
  const [file, argv] = pin ? ['taskset', ['-c', '0', ...wrapped]] : [wrapped[0] as string, wrapped.slice(1)]
  const child: ChildProcess = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  // Keep the tail of both streams (mqlite logs JSON to stdout) to explain a failed start.
  let output = ''
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  let exited = false
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())))
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000)
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL')
      cleanup()
      throw new Error(`${name} did not start on port ${port}${exited ? ` (exited: ${output.trim()})` : ''}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const pid = child.pid
  if (pid === undefined) throw new Error(`${name}: no pid`)
  let stopping: Promise<void> | undefined
  return {
    name,
    url: `mqtt://127.0.0.1:${port}`,
    port,
    pid,
    rssKiB: () => readRssKiB(pid),
    cpuSeconds: () => readCpuSeconds(pid),
    diskBytes: () => (dataDir === undefined ? 0 : directoryBytes(dataDir)),
    stop() {
      stopping ??= (async () => {
        if (!exited) {
          child.kill('SIGTERM')
          const timer = setTimeout(() => child.kill('SIGKILL'), options.stopTimeoutMs ?? 10_000)
          await exit
          clearTimeout(timer)
        }
        cleanup()
      })()
      return stopping
    },
  }
}

/** Lifted limits, to match the Mosquitto configuration below (no queue, retained or subscription caps). */
export const UNLIMITED_SETTINGS = ['store.maxQueuedMessages=0', 'store.maxQueuedBytes=0', 'limits.maxRetainedMessages=0', 'limits.maxRetainedBytes=0', 'limits.maxSubscriptionsPerClient=0']

/**
 * The node arguments that start mqlite as users run it: the built CLI when it exists (else
 * through tsx), after `nodeFlags` (V8 and Node options, e.g. `--max-semi-space-size=32`).
 */
export function mqliteCommand(repoRoot: string, nodeFlags: readonly string[] = []): string[] {
  const built = join(repoRoot, 'dist/src/cli/mqlite.js')
  return [...nodeFlags, ...(existsSync(built) ? [built] : ['--import', 'tsx', join(repoRoot, 'src/cli/mqlite.ts')])]
}

/**
 * mqlite with the limits lifted (UNLIMITED_SETTINGS). With `metrics: false` neither the HTTP
 * endpoint nor $SYS run, so no hook is on the message path; `metrics: true` is the default
 * configuration, for the cost of observability.
 */
export function mqliteTarget(store: 'memory' | 'sqlite', pin: boolean, repoRoot: string, metrics = false, nodeFlags: readonly string[] = [], launchOptions: LaunchOptions = {}): BrokerTarget {
  const name = `mqlite-${store}${metrics ? '+metrics' : ''}`
  return {
    name,
    async start() {
      const port = await freePort()
      const dataDir = mkdtempSync(join(tmpdir(), 'mqlite-bench-'))
      const observability = metrics ? ['--metrics-port', String(await freePort())] : ['--no-metrics', '--set', 'sys.interval=0']
      const args = [
        ...mqliteCommand(repoRoot, nodeFlags),
        ...['--host', '127.0.0.1', '--port', String(port), '--store', store, '--data-dir', dataDir, '--log-level', 'warn'],
        ...observability,
        ...UNLIMITED_SETTINGS.flatMap((kv) => ['--set', kv]),
      ]
      return launch(name, process.execPath, args, port, () => rmSync(dataDir, { recursive: true, force: true }), pin, dataDir, launchOptions)
    },
  }
}

export function mosquittoTarget(pin: boolean, launchOptions: LaunchOptions = {}): BrokerTarget {
  return {
    name: 'mosquitto',
    async start() {
      const port = await freePort()
      const dir = mkdtempSync(join(tmpdir(), 'mosquitto-bench-'))
      const conf = join(dir, 'mosquitto.conf')
      // In-memory like mqlite-memory: no persistence file; unlimited connections and queues so
      // the durable scenario measures the broker, not a default cap.
      writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'max_connections -1', 'max_queued_messages 0', 'max_inflight_messages 0', 'persistence false', ''].join('\n'))
      return launch('mosquitto', 'mosquitto', ['-c', conf], port, () => rmSync(dir, { recursive: true, force: true }), pin, undefined, launchOptions)
    },
  }
}
