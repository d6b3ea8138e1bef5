import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { createClientPool, sleep } from '../helpers/mqtt-clients.js'
import { connectPacket, rawConnect, type RawClient } from '../helpers/raw-client.js'
import { parseExposition, type Exposition } from '../helpers/prometheus-text.js'
import { tempDir } from '../helpers/stores.js'

const GRAFANA = fileURLToPath(new URL('../../grafana/', import.meta.url))
const HAS_PROMETHEUS = spawnSync('prometheus', ['--version']).status === 0
const HAS_PROMTOOL = spawnSync('promtool', ['--version']).status === 0
// .ci/run installs both (Debian package `prometheus`); say why a test is skipped where they are missing.
if (!HAS_PROMETHEUS) console.warn('grafana.test.ts: `prometheus` is not installed: skipping the real-Prometheus test')
if (!HAS_PROMTOOL) console.warn('grafana.test.ts: `promtool` is not installed: skipping the rules check')

interface Target {
  expr: string
  datasource?: { type?: string; uid?: string }
}
interface Panel {
  id: number
  type: string
  title: string
  datasource?: { type?: string; uid?: string }
  fieldConfig?: { defaults?: { unit?: string } }
  targets?: Target[]
  panels?: Panel[]
}
interface Dashboard {
  panels: Panel[]
  templating: { list: Array<{ name: string; type: string; query?: unknown }> }
}

const dashboard = JSON.parse(readFileSync(join(GRAFANA, 'dashboards/mqlite.json'), 'utf8')) as Dashboard
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])])
const dataPanels = allPanels.filter((p) => p.type !== 'row')
const exprs = dataPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })))

/** Metric names in a PromQL expression: identifiers followed by a selector or range, not functions or labels. */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')
  return [...withoutStrings.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)/g)].map((m) => m[1]!)
}

/** The template variables Grafana would substitute, for one broker instance. */
function substitute(expr: string, instance: string): string {
  return expr
    .replaceAll('$__rate_interval', '10s')
    .replaceAll('$__interval', '1s')
    .replaceAll('${instance}', instance)
    .replaceAll('$instance', instance)
}

/** Traffic that gives every series on the dashboard data: all QoS, retained, drops, a queue. */
async function startTraffic(url: string, port: number, pool: ReturnType<typeof createClientPool>) {
  const live = await pool.connect(url, { clientId: 'dash-live', protocolVersion: 5 })
  await live.subscribeAsync('dash/#', { qos: 2 })
  // a persistent session that goes away: its queue grows
  const away = await pool.connect(url, { clientId: 'dash-away', clean: false })
  await away.subscribeAsync('dash/#', { qos: 1 })
  await away.endAsync()
  // a persistent session that never acknowledges: messages stay in flight
  const stuck: RawClient = await rawConnect(port)
  stuck.send(connectPacket('dash-stuck', { clean: false }))
  await stuck.next((p) => p.cmd === 'connack')
  stuck.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dash/#', qos: 1 }] })
  await stuck.next((p) => p.cmd === 'suback')
  const publisher: MqttClient = await pool.connect(url)
  let stopped = false
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      await Promise.all([
        publisher.publishAsync('dash/q0', `m${i}`, { qos: 0 }),
        publisher.publishAsync('dash/q1', `m${i}`, { qos: 1 }),
        publisher.publishAsync('dash/q2', `m${i}`, { qos: 2 }),
        publisher.publishAsync(`dash/retained/${i % 5}`, `r${i}`, { qos: 1, retain: true }),
        publisher.publishAsync('nobody/listens', 'x', { qos: 0 }),
      ])
      await sleep(50)
    }
  })()
  return {
    async stop() {
      stopped = true
      await loop.catch(() => undefined)
      stuck.close()
    },
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

describe('the Grafana dashboard and Prometheus files', () => {
  let running: RunningBroker
  let metricsUrl: string
  let exposition: Exposition
  const pool = createClientPool()
  let traffic: { stop(): Promise<void> } | undefined
  let prometheus: ChildProcess | undefined
  let prometheusUrl = ''
  let prometheusLog = ''

  beforeAll(async () => {
    running = await startBroker({
      store: { type: 'sqlite', path: join(tempDir(), 'mqlite.db') },
      metrics: { enabled: true, host: '127.0.0.1', port: 0 },
      sys: { interval: 1 },
    })
    metricsUrl = running.broker.metrics.server!.url
    traffic = await startTraffic(running.url, running.port, pool)
    // Garbage, so the GC histogram has observations (V8 scavenges when the young generation fills).
    let sink = 0
    for (let i = 0; i < 2_000_000; i++) sink += [i, i + 1].length
    expect(sink).toBe(4_000_000)
    await sleep(300)
    exposition = parseExposition(await (await fetch(`${metricsUrl}/metrics`)).text())
  })

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
      prometheus.kill('SIGTERM')
      const killer = setTimeout(() => prometheus?.kill('SIGKILL'), 5000)
      await once(prometheus, 'exit')
      clearTimeout(killer)
    }
    await traffic?.stop()
    await pool.closeAll()
    await running?.close()
  })

  it('has the rows, unique panel ids, and a datasource and a unit on every panel', () => {
    const ids = allPanels.map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(allPanels.filter((p) => p.type === 'row').map((p) => p.title)).toEqual([
      'Overview', 'Latency', 'Sessions and queues', 'Store', 'Process', 'Security',
    ])
    expect(dataPanels.length).toBeGreaterThan(15)
    for (const panel of dataPanels) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' })
      expect(panel.fieldConfig?.defaults?.unit, panel.title).toMatch(/\S/)
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0)
      for (const target of panel.targets ?? []) {
        expect(target.expr, panel.title).toContain('instance=~"$instance"')
      }
    }
    const variables = dashboard.templating.list.map((v) => [v.name, v.type])
    expect(variables).toEqual([
      ['datasource', 'datasource'],
      ['instance', 'query'],
    ])
  })

  it('references only metrics the broker serves', () => {
    const served = new Set<string>()
    for (const family of exposition.values()) {
      served.add(family.name)
      // a histogram's series exist from its first observation (the GC one: the first collection)
      if (family.type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) served.add(family.name + suffix)
      for (const s of family.samples) served.add(s.name)
    }
    const missing = exprs.flatMap(({ panel, expr }) => metricNames(expr).filter((n) => !served.has(n)).map((n) => `${panel}: ${n}`))
    expect(missing).toEqual([])
    // and the alerting rules too (`up` is Prometheus's own)
    const rules = parseYaml(readFileSync(join(GRAFANA, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
    const ruleMissing = rules.groups.flatMap((g) => g.rules.flatMap((r) => metricNames(r.expr).filter((n) => n !== 'up' && !served.has(n))))
    expect(ruleMissing).toEqual([])
    expect(rules.groups.flatMap((g) => g.rules.map((r) => r.alert))).toEqual([
      'MqliteDown', 'MqliteMessagesDropped', 'MqliteQueueGrowing', 'MqliteStoreCommitSlow',
    ])
  })

  it('provisions a Prometheus datasource and a file provider for the dashboards folder the compose file mounts', () => {
    const ds = parseYaml(readFileSync(join(GRAFANA, 'provisioning/datasources/prometheus.yml'), 'utf8')) as { datasources: Array<{ type: string; url: string }> }
    expect(ds.datasources.map((d) => d.type)).toEqual(['prometheus'])
    const providers = parseYaml(readFileSync(join(GRAFANA, 'provisioning/dashboards/mqlite.yml'), 'utf8')) as {
      providers: Array<{ type: string; options: { path: string } }>
    }
    const compose = parseYaml(readFileSync(join(GRAFANA, 'docker-compose.yml'), 'utf8')) as {
      services: Record<string, { volumes?: string[]; command?: string | string[] }>
    }
    expect(providers.providers[0]?.type).toBe('file')
    expect(compose.services.grafana?.volumes).toContain(`./dashboards:${providers.providers[0]?.options.path}:ro`)
    expect(compose.services.grafana?.volumes).toContain('./provisioning:/etc/grafana/provisioning:ro')
    expect(ds.datasources[0]?.url).toBe('http://prometheus:9090')
    expect(Object.keys(compose.services).sort()).toEqual(['grafana', 'mqlite', 'prometheus'])
    expect(String(compose.services.mqlite?.command)).toContain('--metrics-host 0.0.0.0')
  })

  it.skipIf(!HAS_PROMTOOL)('has alerting rules and a scrape config that promtool accepts', () => {
    const rules = spawnSync('promtool', ['check', 'rules', join(GRAFANA, 'alerts.yml')], { encoding: 'utf8' })
    expect(rules.status, rules.stdout + rules.stderr).toBe(0)
    const config = spawnSync('promtool', ['check', 'config', join(GRAFANA, 'prometheus.yml')], { encoding: 'utf8' })
    expect(config.status, config.stdout + config.stderr).toBe(0)
  })

  it.skipIf(!HAS_PROMETHEUS)(
    'evaluates every dashboard query against a real Prometheus scraping the broker',
    async () => {
      const dir = tempDir('mqlite-prometheus-')
      const port = await freePort()
      const instance = new URL(metricsUrl).host
      // grafana/prometheus.yml, with this broker as the target and a 1 s interval
      const config = parseYaml(readFileSync(join(GRAFANA, 'prometheus.yml'), 'utf8')) as {
        global: Record<string, string>
        rule_files: string[]
        scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>
      }
      config.global.scrape_interval = '1s'
      config.global.evaluation_interval = '1s'
      config.rule_files = config.rule_files.map((f) => join(GRAFANA, f))
      const job = config.scrape_configs.find((j) => j.job_name === 'mqlite')
      expect(job, 'job mqlite').toBeDefined()
      job!.static_configs = [{ targets: [instance] }]
      writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config))

      prometheus = spawn(
        'prometheus',
        [
          `--config.file=${join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      prometheus.stdout?.on('data', (b: Buffer) => (prometheusLog += b.toString()))
      prometheus.stderr?.on('data', (b: Buffer) => (prometheusLog += b.toString()))
      prometheusUrl = `http://127.0.0.1:${port}`

      const query = async (q: string): Promise<{ status: string; error?: string; data?: { result: Array<{ value: [number, string] }> } }> => {
        const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(q)}`)
        return (await res.json()) as never
      }
      // three scrapes of the broker: rates over the substituted 10 s window have data
      const deadline = Date.now() + 25_000
      for (;;) {
        if (prometheus.exitCode !== null) throw new Error(`prometheus exited:\n${prometheusLog}`)
        const answer = await query(`count_over_time(up{job="mqlite",instance="${instance}"}[1m])`).catch(() => undefined)
        const scrapes = Number(answer?.data?.result[0]?.value[1] ?? 0)
        if (scrapes >= 3) break
        if (Date.now() > deadline) throw new Error(`prometheus did not scrape the broker 3 times:\n${prometheusLog}`)
        await sleep(250)
      }
      const up = await query(`up{job="mqlite",instance="${instance}"}`)
      expect(up.data?.result[0]?.value[1]).toBe('1')

      const failures: string[] = []
      for (const { panel, expr } of exprs) {
        const q = substitute(expr, instance)
        const answer = await query(q)
        if (answer.status !== 'success') failures.push(`${panel}: ${q}: ${answer.error}`)
        else if (!answer.data || answer.data.result.length === 0) failures.push(`${panel}: ${q}: no series`)
      }
      expect(failures).toEqual([])
      // the rules loaded too
      const rules = (await (await fetch(`${prometheusUrl}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ health: string }> }> } }
      const health = rules.data.groups.flatMap((g) => g.rules.map((r) => r.health))
      expect(health.length).toBe(4)
      expect(health.every((h) => h === 'ok' || h === 'unknown')).toBe(true)
    },
    40_000,
  )
})
