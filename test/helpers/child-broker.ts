import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLI = 'src/cli/mqlite.ts'

export interface ChildBroker {
  process: ChildProcess
  /** ports of the listeners, in config order, read from the "listener started" log lines */
  ports: number[]
  port: number
  /** every JSON log line so far */
  logs: Array<Record<string, unknown>>
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
  /** kill -9: no shutdown at all. */
  kill(): Promise<void>
}

/**
 * Runs the real CLI (`mqlite`) as a child process, like a user would, and waits for every
 * listener to report its port. If the process exits first, rejects with its output.
 */
export async function spawnBroker(args: string[], options: { env?: NodeJS.ProcessEnv; listeners?: number } = {}): Promise<ChildBroker> {
  const expected = options.listeners ?? 1
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, '--log-level', 'info', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...options.env, MQLITE_LOG__PRETTY: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: Array<Record<string, unknown>> = []
  const ports: number[] = []
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null }))

  const ready = new Promise<void>((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>
      try {
        entry = JSON.parse(line) as Record<string, unknown>
      } catch {
        return
      }
      logs.push(entry)
      if (entry.msg === 'listener started' && typeof entry.port === 'number') ports.push(entry.port)
      if (entry.msg === 'mqlite ready' && ports.length >= expected) resolve()
    })
  })
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('broker did not start in 20 s')), 20_000).unref())
  try {
    await Promise.race([
      ready,
      timeout,
      exited.then(({ code }) => {
        throw new Error(`broker exited with ${code} before it was ready:\n${stderr}\n${JSON.stringify(logs)}`)
      }),
    ])
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }

  return {
    process: child,
    ports,
    port: ports[0]!,
    logs,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill(signal)
      return (await exited).code
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGKILL')
      await exited
    },
  }
}
