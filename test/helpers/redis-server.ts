import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface RedisServer {
  readonly url: string
  readonly port: number
  /** kill -9, then start again on the same port with the same data (appendonly file) */
  restart(): Promise<void>
  /** kill -9 without restarting */
  kill(): Promise<void>
  /** start again after kill() */
  start(): Promise<void>
  close(): Promise<void>
}

/**
 * Whether `redis-server` is installed. Without it the cluster tests are skipped with a warning, so
 * `npm test` passes on a machine without Redis; CI installs it and sets TEST_REQUIRE_REDIS,
 * which turns a missing server into a failure instead.
 */
export function redisAvailable(file: string): boolean {
  if (spawnSync('redis-server', ['--version']).status === 0) return true
  if (process.env.TEST_REQUIRE_REDIS) throw new Error(`${file}: redis-server is not installed (TEST_REQUIRE_REDIS is set)`)
  console.warn(`${file}: \`redis-server\` is not installed: skipping the cluster tests`)
  return false
}

async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * A real redis-server on a free port, with an append-only file fsynced every write so a restart
 * keeps what it acknowledged. Its own temporary directory; close() removes it.
 */
export async function startRedisServer(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'mqlite-redis-'))
  const port = await freePort()
  let child: ChildProcess | undefined

  async function start(): Promise<void> {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) resolve()
      }
      proc.stdout?.on('data', onData)
      proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${output}`)))
    })
  }

  async function kill(): Promise<void> {
    const proc = child
    child = undefined
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill('SIGKILL')
    await once(proc, 'exit')
  }

  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    start,
    async restart() {
      await kill()
      await start()
    },
    async close() {
      await kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
