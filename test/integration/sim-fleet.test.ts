import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runScenario } from '../../devices-sim/index.js'
import { startBroker, type RunningBroker } from '../helpers/in-process-broker.js'

// The device simulator end to end against a real mqlite broker: exact counts and zero loss.
describe('devices-sim against mqlite', () => {
  let running: RunningBroker
  beforeAll(async () => {
    running = await startBroker()
  })
  afterAll(() => running?.close())

  it('runs 50 QoS 1 devices in-process with zero loss and exact counts', async () => {
    const report = await runScenario(
      {
        broker: { url: running.url },
        seed: 1,
        grace: '3s',
        profiles: [
          {
            name: 'thermo',
            count: 50,
            clientId: 'sim-it-{index}',
            publish: {
              topic: 'it/{deviceId}/temp',
              rate: '10/s',
              jitter: '20%',
              qos: 1,
              count: 30,
              payload: { format: 'json', fields: { t: { type: 'randomWalk', min: 0, max: 40 } } },
            },
            status: { topic: 'it/{deviceId}/status' },
          },
        ],
      },
      { workers: 0 },
    )
    expect(report.stoppedBy).toBe('count')
    expect(report.devices).toMatchObject({ total: 50, connectedPeak: 50, connects: 50, connectFailuresTotal: 0, done: 50 })
    expect(report.messages).toMatchObject({
      sent: 1500,
      acked: 1500,
      failed: 0,
      unacked: 0,
      expected: 1500,
      received: 1500,
      unique: 1500,
      lost: 0,
      duplicates: 0,
      outOfOrder: 0,
      foreign: 0,
    })
    expect(report.latencyMs.count).toBe(1500)
    expect(report.latencyMs.p99).toBeGreaterThan(0)
  })

  it('spreads devices over worker threads, with two observers and MQTT 5 commands', async () => {
    const report = await runScenario(
      {
        broker: { url: running.url, protocol: 5 },
        seed: 2,
        grace: '3s',
        observers: { count: 2 },
        commander: { rate: '20/s', timeout: '2s' },
        profiles: [
          {
            name: 'meter',
            count: 20,
            publish: [
              { topic: 'it2/{deviceId}/power', rate: '10/s', qos: 1, count: 20, payload: { format: 'binary', size: 64 } },
              { topic: 'it2/{deviceId}/seq/{seq}', rate: '5/s', qos: 2, count: 10 },
            ],
            commands: { topic: 'it2/{deviceId}/cmd' },
          },
        ],
      },
      { workers: 2 },
    )
    expect(report.simulator.workers).toBe(2)
    // Two observers each expect all 20 x (20 + 10) messages.
    expect(report.messages).toMatchObject({ sent: 600, acked: 600, expected: 1200, received: 1200, unique: 1200, lost: 0, duplicates: 0 })
    expect(report.streams.map((s) => [s.name, s.unique, s.lost])).toEqual([
      ['observer-0', 600, 0],
      ['observer-1', 600, 0],
    ])
    expect(report.commands?.sent).toBeGreaterThan(0)
    expect(report.commands?.answered).toBe(report.commands?.sent)
    expect(report.commands?.timedOut).toBe(0)
  })

  it('expects only what the observers subscribe to', async () => {
    // Stream "b" is outside the observers' filter: its messages are neither expected nor lost,
    // while every message of stream "a" must arrive.
    const report = await runScenario(
      {
        broker: { url: running.url, protocol: 4 },
        seed: 3,
        grace: '2s',
        observers: { count: 1, topics: ['it3/+/a'] },
        profiles: [
          {
            name: 'x',
            count: 5,
            publish: [
              { topic: 'it3/{deviceId}/a', rate: '20/s', qos: 1, count: 10 },
              { topic: 'it3/{deviceId}/b', rate: '20/s', qos: 1, count: 7 },
            ],
          },
        ],
      },
      { workers: 0 },
    )
    expect(report.messages).toMatchObject({ sent: 85, acked: 85, expected: 50, unique: 50, lost: 0, unexpected: 0 })
  })
})
