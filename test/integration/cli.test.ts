import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js'
import { collectMessages, createClientPool } from '../helpers/mqtt-clients.js'
import { tempDir } from '../helpers/stores.js'

// The broker as users run it: the `mqlite` CLI in its own process.
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/mqlite.ts', ...args], {
    cwd: join(import.meta.dirname, '../..'),
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 20_000,
  })

describe('mqlite CLI', () => {
  const pool = createClientPool()
  let child: ChildBroker | undefined
  afterEach(async () => {
    await pool.closeAll()
    await child?.kill()
    child = undefined
  })

  it('serves MQTT, then exits 0 on SIGTERM after disconnecting v5 clients with 0x8B', async () => {
    child = await spawnBroker(['--port', '0', '--no-metrics', '--data-dir', tempDir()])
    const url = `mqtt://127.0.0.1:${child.port}`
    const sub = await pool.connect(url, { protocolVersion: 5 })
    const inbox = collectMessages(sub)
    await sub.subscribeAsync('cli/t', { qos: 1 })
    const pub = await pool.connect(url, { protocolVersion: 4 })
    await pub.publishAsync('cli/t', 'from a child process', { qos: 1 })
    await inbox.waitFor(1)

    const disconnect = new Promise<number | undefined>((resolve) => sub.once('disconnect', (p) => resolve(p.reasonCode)))
    expect(await child.stop('SIGTERM')).toBe(0)
    expect(await disconnect).toBe(0x8b)
    expect(child.logs.some((l) => l.msg === 'mqlite stopped')).toBe(true)
  })

  it('logs one line per listener with its URL', async () => {
    const dir = tempDir()
    const config = join(dir, 'mqlite.yaml')
    writeFileSync(
      config,
      `dataDir: ${dir}\nmetrics: { enabled: false }\nlisteners:\n  - { type: tcp, port: 0 }\n  - { type: ws, port: 0, path: /mqtt }\n`,
    )
    child = await spawnBroker(['--config', config], { listeners: 2 })
    const lines = child.logs.filter((l) => l.msg === 'listener started').map((l) => l.url)
    expect(lines).toEqual([`mqtt://127.0.0.1:${child.ports[0]}`, `ws://127.0.0.1:${child.ports[1]}/mqtt`])
  })

  it('refuses an unknown key and a bad value, naming each, with exit code 2', () => {
    const dir = tempDir()
    const config = join(dir, 'bad.json')
    writeFileSync(config, JSON.stringify({ store: { typo: 1 }, listeners: [{ type: 'tcp', port: 70000 }] }))
    const result = run(['--config', config], { MQLITE_MQTT__MAX_KEEP_ALIVE: '"soon"' })
    expect(result.status).toBe(2)
    expect(result.stderr).toContain('store.typo: unknown key')
    expect(result.stderr).toContain('listeners[0].port')
    expect(result.stderr).toContain('mqtt.maxKeepAlive')
  })

  it('lets flags override the environment, which overrides the file', () => {
    const dir = tempDir()
    const config = join(dir, 'mqlite.yaml')
    writeFileSync(config, 'store: { type: memory, synchronous: full }\nlog: { level: warn }\nmetrics: { port: 1 }\n')
    const result = run(['--config', config, '--log-level', 'error', '--print-config'], {
      MQLITE_LOG__LEVEL: 'debug',
      MQLITE_METRICS__PORT: '9999',
    })
    expect(result.status).toBe(0)
    const effective = JSON.parse(result.stdout) as { store: { type: string; synchronous: string }; log: { level: string }; metrics: { port: number } }
    expect(effective.store).toMatchObject({ type: 'memory', synchronous: 'full' })
    expect(effective.metrics.port).toBe(9999)
    expect(effective.log.level).toBe('error')
  })

  it('documents every configuration key in --help', () => {
    const result = run(['--help'])
    expect(result.status).toBe(0)
    for (const key of ['store.synchronous', 'mqtt.maxKeepAlive', 'metrics.port', 'listeners[type=wss].tls.cert', 'MQLITE_STORE__TYPE']) {
      expect(result.stdout).toContain(key)
    }
  })

  it('fails to start with a clear message when the port is taken', async () => {
    child = await spawnBroker(['--port', '0', '--no-metrics', '--store', 'memory'])
    const result = run(['--port', String(child.port), '--no-metrics', '--store', 'memory', '--log-level', 'info'], { MQLITE_LOG__PRETTY: 'false' })
    expect(result.status).toBe(1)
    expect(result.stdout).toContain('cannot listen on 127.0.0.1')
  })
})
