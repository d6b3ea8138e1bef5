// Store micro-benchmark: how many messages per second go through the durable path a QoS 1
// delivery to a persistent subscriber takes (enqueue -> packet id assigned -> PUBACK clears it),
// with `concurrency` messages under way at once as on a busy broker, for each synchronous mode.
// Also reports the database size per queued message. Run: npx tsx test/helpers/store-throughput.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { SqlitePersistence } from '../../src/persistence/sqlite-persistence.js'

const MESSAGES = Number(process.env.MESSAGES ?? 50_000)
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 500)
const PAYLOAD = Buffer.alloc(Number(process.env.PAYLOAD ?? 64), 120)

async function run(synchronous: 'normal' | 'full', concurrency: number): Promise<{ rate: number; avgBatch: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mqlite-bench-'))
  const batches: number[] = []
  const store = new SqlitePersistence({ path: join(dir, 'bench.db'), synchronous, onCommit: (i) => batches.push(i.batchSize) })
  await store.setup({ id: 'bench', counter: 0 })
  let next = 0
  async function worker(w: number): Promise<void> {
    const client = { id: `sub-${w % 50}` }
    while (next < MESSAGES) {
      const n = ++next
      const packet = { cmd: 'publish', topic: `bench/${w}`, payload: PAYLOAD, qos: 1, retain: false, dup: false, brokerId: 'bench', brokerCounter: n }
      const messageId = (n % 65535) + 1
      await store.outgoingEnqueueCombi([{ clientId: client.id }], packet)
      await store.outgoingUpdate(client, { ...packet, messageId })
      await store.outgoingClearMessageId(client, { messageId })
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)))
  const seconds = (performance.now() - started) / 1000
  await store.close()
  rmSync(dir, { recursive: true, force: true })
  return { rate: MESSAGES / seconds, avgBatch: batches.reduce((a, b) => a + b, 0) / batches.length }
}

async function bytesPerQueuedMessage(count: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'mqlite-bench-'))
  const store = new SqlitePersistence({ path: join(dir, 'size.db') })
  await store.setup({ id: 'bench', counter: 0 })
  const empty = store.stats().dbBytes
  const writes: Array<Promise<void>> = []
  for (let n = 1; n <= count; n++) {
    writes.push(store.outgoingEnqueueCombi([{ clientId: 'offline' }], { cmd: 'publish', topic: 'devices/0001/telemetry', payload: PAYLOAD, qos: 1, brokerId: 'bench', brokerCounter: n }))
  }
  await Promise.all(writes)
  const perMessage = (store.stats().dbBytes - empty) / count
  await store.close()
  rmSync(dir, { recursive: true, force: true })
  return perMessage
}

const rows: string[] = []
for (const synchronous of ['normal', 'full'] as const) {
  for (const concurrency of [1, CONCURRENCY]) {
    const { rate, avgBatch } = await run(synchronous, concurrency)
    rows.push(`${synchronous.padEnd(8)} ${String(concurrency).padStart(11)} ${Math.round(rate).toString().padStart(10)} ${avgBatch.toFixed(1).padStart(14)}`)
  }
}
console.log(`enqueue + update + clear, ${MESSAGES} messages, ${PAYLOAD.length}-byte payloads`)
console.log('sync     concurrency      msg/s  writes/commit')
for (const row of rows) console.log(row)
console.log(`database bytes per queued message (${PAYLOAD.length}-byte payload): ${Math.round(await bytesPerQueuedMessage(20_000))}`)
