import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import { pino } from 'pino'
import { describe, expect, test } from 'vitest'
import { logBrokerEvents } from '../../src/broker/log-events.js'
import { PublishRefusedError } from '../../src/errors.js'

/** The broker's event log at `level`, written to an array of parsed lines. */
function loggedBroker(level: string) {
  const lines: Array<{ level: number; msg: string; err?: string; clientId?: string }> = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()))
      done()
    },
  })
  const broker = new EventEmitter()
  logBrokerEvents(broker as unknown as Aedes, pino({ level }, sink))
  return { broker, lines }
}

const client = { id: 'sensor-1' } as unknown as Client
const WARN = 40
const DEBUG = 20

describe('broker event log', () => {
  test('a protocol error is a warning; per-message errors are debug lines', async () => {
    const { broker, lines } = loggedBroker('debug')
    broker.emit('clientError', client, new Error('invalid topic'))
    // aedes reports a write after the close once per delivery that was on its way
    for (let i = 0; i < 3; i++) broker.emit('clientError', client, new Error('connection closed'))
    broker.emit('clientError', client, new PublishRefusedError('not authorized'))
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines.map((line) => [line.level, line.err])).toEqual([
      [WARN, 'invalid topic'],
      [DEBUG, 'connection closed'],
      [DEBUG, 'connection closed'],
      [DEBUG, 'connection closed'],
      [DEBUG, 'not authorized'],
    ])
    expect(lines.every((line) => line.msg === 'client error' && line.clientId === 'sensor-1')).toBe(true)
  })

  test('at the default level a subscriber dropping under load leaves no line per delivery', async () => {
    const { broker, lines } = loggedBroker('info')
    for (let i = 0; i < 100; i++) broker.emit('clientError', client, new Error('connection closed'))
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines).toEqual([])
  })
})
