import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { allowAllAuthorizer } from '../../src/auth/authorizer.js'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'
import { createClientPool, sleep } from '../helpers/mqtt-clients.js'

// The default log level stays proportional to connections, not traffic.
describe('logging at the default level', () => {
  const lines: Array<{ level: number; msg: string }> = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as { level: number; msg: string })
      done()
    },
  })
  let running: RunningBroker
  const pool = createClientPool()
  afterAll(async () => {
    await pool.closeAll()
    await running?.close()
  })

  it('logs the connection once, not each refused PUBLISH', async () => {
    running = await startBroker(
      {},
      { logger: pino({ level: 'info' }, sink), authorizer: { ...allowAllAuthorizer, canPublish: (_c, topic) => !topic.startsWith('closed/') } },
    )
    const client = await pool.connect(running.url, { protocolVersion: 5, clientId: 'chatty' })
    for (let i = 0; i < 20; i++) await client.publishAsync('closed/t', 'x', { qos: 1 }).catch(() => {})
    await sleep(100)
    expect(client.connected).toBe(true)
    const perClient = lines.filter((l) => l.msg !== 'listener started' && l.msg !== 'mqlite ready')
    expect(perClient.map((l) => l.msg)).toEqual(['client connected'])
  })
})
