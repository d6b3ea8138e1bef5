import mqtt, { type MqttClient } from 'mqtt'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { spawnBroker, type ChildBroker } from '../helpers/child-broker.js'
import { sleep } from '../helpers/mqtt-clients.js'
import { tempDir } from '../helpers/stores.js'

// The durability promise, tested the hard way: numbered QoS 1 and QoS 2 messages go to persistent
// subscribers (one offline the whole time, one online and acknowledging), the broker is killed
// with SIGKILL at random points and restarted on the same database. Every message whose PUBACK
// (QoS 1) or PUBCOMP (QoS 2) the publisher received must reach every subscriber: at least once
// for QoS 1, exactly once for QoS 2.

const ROUNDS = 3
const IN_FLIGHT = 20

interface Tally {
  qos1: Map<number, number>
  qos2: Map<number, number>
}

function tally(client: MqttClient, t: Tally = { qos1: new Map(), qos2: new Map() }): Tally {
  client.on('message', (topic, payload) => {
    const seq = Number(payload.toString())
    const map = topic.endsWith('/q2') ? t.qos2 : t.qos1
    map.set(seq, (map.get(seq) ?? 0) + 1)
  })
  return t
}

describe('kill -9 durability (SQLite store)', () => {
  const dir = tempDir()
  const db = join(dir, 'crash.db')
  let broker: ChildBroker | undefined
  const clients: MqttClient[] = []
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})))
    await broker?.kill()
  })

  const start = async (port: number) =>
    (broker = await spawnBroker(['--store', 'sqlite', '--db', db, '--port', String(port), '--no-metrics']))

  it('delivers every acknowledged message after repeated crashes', { timeout: 120_000 }, async () => {
    await start(0)
    const port = broker!.port
    const url = `mqtt://127.0.0.1:${port}`

    // offline subscriber (3.1.1 persistent session): subscribes, leaves, comes back at the very end
    const offline = await mqtt.connectAsync(url, { clientId: 'crash-offline', clean: false, protocolVersion: 4, reconnectPeriod: 0 })
    // counted from the start: the first messages can reach it while its DISCONNECT is under way
    const offlineTally = tally(offline)
    await offline.subscribeAsync('crash/#', { qos: 2 })
    await offline.endAsync()

    // online subscriber (MQTT 5 session): stays, reconnects by itself after each crash
    const online = await mqtt.connectAsync(url, {
      clientId: 'crash-online',
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3600 },
      reconnectPeriod: 100,
    })
    clients.push(online)
    await online.subscribeAsync('crash/#', { qos: 2 })
    const onlineTally = tally(online)

    const acked = { qos1: new Set<number>(), qos2: new Set<number>() }
    let seq = 0
    for (let round = 0; round < ROUNDS; round++) {
      if (round > 0) await start(port)
      const publisher = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, clientId: `crash-pub-${round}` })
      publisher.on('error', () => {})
      const killAfter = 100 + Math.floor(Math.random() * 300)
      let ackedThisRound = 0
      let killed = false
      const inFlight = new Set<Promise<void>>()
      while (!killed) {
        const n = ++seq
        const qos = n % 2 === 0 ? 2 : 1
        const p: Promise<void> = publisher
          .publishAsync(`crash/q${qos}`, String(n), { qos })
          .then(() => {
            ;(qos === 1 ? acked.qos1 : acked.qos2).add(n)
            if (++ackedThisRound === killAfter && !killed) {
              killed = true
              void broker!.kill()
            }
          })
          .catch(() => {}) // unacknowledged: no promise was made
          .finally(() => inFlight.delete(p))
        inFlight.add(p)
        if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight)
      }
      await broker!.kill()
      publisher.end(true)
      await Promise.race([Promise.allSettled(inFlight), sleep(2000)])
    }

    await start(port)
    const back = await mqtt.connectAsync(url, { clientId: 'crash-offline', clean: false, protocolVersion: 4, reconnectPeriod: 0 })
    clients.push(back)
    tally(back, offlineTally)

    const complete = (t: Tally) => [...acked.qos1].every((n) => t.qos1.has(n)) && [...acked.qos2].every((n) => t.qos2.has(n))
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline && !(complete(onlineTally) && complete(offlineTally))) await sleep(200)
    await sleep(500) // let late duplicates show up

    expect(acked.qos1.size + acked.qos2.size).toBeGreaterThan(ROUNDS * 100)
    for (const [name, t] of [['online', onlineTally], ['offline', offlineTally]] as const) {
      const lost1 = [...acked.qos1].filter((n) => !t.qos1.has(n))
      const lost2 = [...acked.qos2].filter((n) => !t.qos2.has(n))
      const duplicated2 = [...acked.qos2].filter((n) => (t.qos2.get(n) ?? 0) > 1)
      expect({ subscriber: name, lost1, lost2, duplicated2 }).toEqual({ subscriber: name, lost1: [], lost2: [], duplicated2: [] })
    }
  })
})
