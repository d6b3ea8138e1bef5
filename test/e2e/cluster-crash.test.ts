import mqtt, { type MqttClient } from 'mqtt'
import { afterAll, describe, expect, it } from 'vitest'
import { redisAvailable } from '../helpers/redis-server.js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { sleep } from '../helpers/mqtt-clients.js'

// The durability promise across nodes: numbered QoS 1 and QoS 2 messages go to persistent
// subscribers (one online, one offline) while the node that both the publisher and the online
// subscriber use is killed with SIGKILL. They reconnect to the surviving nodes; every message whose
// PUBACK (QoS 1) or PUBCOMP (QoS 2) the publisher received reaches every subscriber, at least once
// for QoS 1 and exactly once for QoS 2.

const IN_FLIGHT = 20

interface Tally {
  qos1: Map<number, number>
  qos2: Map<number, number>
}

function tally(client: MqttClient): Tally {
  const t: Tally = { qos1: new Map(), qos2: new Map() }
  client.on('message', (topic, payload) => {
    const seq = Number(payload.toString())
    const map = topic.endsWith('/q2') ? t.qos2 : t.qos1
    map.set(seq, (map.get(seq) ?? 0) + 1)
  })
  return t
}

function port(url: string): number {
  return Number(new URL(url).port)
}

describe.skipIf(!redisAvailable('cluster-crash.test.ts'))('kill -9 of a cluster node during QoS 1/2 traffic', () => {
  let cluster: TestCluster
  const clients: MqttClient[] = []
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})))
    await cluster?.close()
  })

  it.each([1, 2, 3])('delivers every acknowledged message after the node dies (kill point %i)', { timeout: 90_000 }, async (round) => {
    cluster = round === 1 ? await startCluster(3) : cluster
    if (round > 1) await cluster.start(0)
    const topic = `crash${round}`

    const offline = await mqtt.connectAsync(cluster.url(0), { clientId: `${topic}-offline`, clean: false, protocolVersion: 4, reconnectPeriod: 0 })
    const offlineTally = tally(offline)
    await offline.subscribeAsync(`${topic}/#`, { qos: 2 })
    await offline.endAsync()

    // starts on the node that dies, then moves on to node 2 by itself
    const online = await mqtt.connectAsync(cluster.url(0), {
      clientId: `${topic}-online`,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3600 },
      reconnectPeriod: 100,
      servers: [
        { host: '127.0.0.1', port: port(cluster.url(0)) },
        { host: '127.0.0.1', port: port(cluster.url(1)) },
      ],
    })
    clients.push(online)
    online.on('error', () => {})
    await online.subscribeAsync(`${topic}/#`, { qos: 2 })
    const onlineTally = tally(online)

    const acked = { qos1: new Set<number>(), qos2: new Set<number>() }
    let seq = 0
    const publishUntil = async (publisher: MqttClient, stop: () => boolean): Promise<void> => {
      const inFlight = new Set<Promise<void>>()
      // publishes in flight when the connection dies never settle: stop waiting for them then
      const closed = new Promise<void>((resolve) => publisher.once('close', () => resolve()))
      while (!stop()) {
        const n = ++seq
        const qos = n % 2 === 0 ? 2 : 1
        const p = publisher.publishAsync(`${topic}/q${qos}`, String(n), { qos }).then(
          () => void (qos === 1 ? acked.qos1 : acked.qos2).add(n),
          () => {},
        )
        inFlight.add(p)
        void p.finally(() => inFlight.delete(p))
        if (inFlight.size >= IN_FLIGHT) await Promise.race([...inFlight, closed])
        if (!publisher.connected) break
      }
      await Promise.race([Promise.allSettled(inFlight), closed, sleep(5000)])
    }

    // publisher on the doomed node; killed at a random point of its stream
    const doomed = await mqtt.connectAsync(cluster.url(0), { protocolVersion: 5, reconnectPeriod: 0, clientId: `${topic}-pub-a` })
    doomed.on('error', () => {})
    let killed = false
    const killAfter = 100 + Math.floor(Math.random() * 300)
    setTimeout(() => {
      void cluster.nodes[0]!.kill().then(() => (killed = true))
    }, killAfter)
    await publishUntil(doomed, () => killed)
    doomed.end(true)
    const ackedBeforeKill = acked.qos1.size + acked.qos2.size
    expect(ackedBeforeKill).toBeGreaterThan(0)

    // the publisher comes back on node 3 and carries on
    const survivor = await mqtt.connectAsync(cluster.url(2), { protocolVersion: 5, reconnectPeriod: 0, clientId: `${topic}-pub-b` })
    clients.push(survivor)
    const target = seq + 200
    await publishUntil(survivor, () => seq >= target)

    const back = await mqtt.connectAsync(cluster.url(2), { clientId: `${topic}-offline`, clean: false, protocolVersion: 4, reconnectPeriod: 0 })
    clients.push(back)
    const backTally = tally(back)

    const complete = (t: Tally): boolean => [...acked.qos1].every((n) => t.qos1.has(n)) && [...acked.qos2].every((n) => t.qos2.has(n))
    const merged = (a: Tally, b: Tally): Tally => {
      const m: Tally = { qos1: new Map(a.qos1), qos2: new Map(a.qos2) }
      for (const [n, c] of b.qos1) m.qos1.set(n, (m.qos1.get(n) ?? 0) + c)
      for (const [n, c] of b.qos2) m.qos2.set(n, (m.qos2.get(n) ?? 0) + c)
      return m
    }
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline && !(complete(onlineTally) && complete(merged(offlineTally, backTally)))) await sleep(100)
    await sleep(500) // late duplicates would show now

    for (const t of [onlineTally, merged(offlineTally, backTally)]) {
      const missing1 = [...acked.qos1].filter((n) => !t.qos1.has(n))
      const missing2 = [...acked.qos2].filter((n) => !t.qos2.has(n))
      const twice2 = [...t.qos2].filter(([, count]) => count > 1).map(([n]) => n)
      expect({ missing1, missing2, twice2 }).toEqual({ missing1: [], missing2: [], twice2: [] })
    }
    await Promise.all([online.endAsync(true), back.endAsync(true), survivor.endAsync(true)])
  })
})
