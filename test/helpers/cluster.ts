import { spawnBroker, type ChildBroker } from './child-broker.js'
import { startRedisServer, type RedisServer } from './redis-server.js'

export interface TestCluster {
  redis: RedisServer
  nodes: ChildBroker[]
  /** mqtt://127.0.0.1:<port> of node i */
  url(i: number): string
  /** Starts node i (again), on its previous port if it had one. */
  start(i: number): Promise<ChildBroker>
  close(): Promise<void>
}

export const HEARTBEAT_MS = 300

/**
 * A real redis-server and `count` mqlite processes in cluster mode on free ports, with short
 * heartbeats so a dead node is noticed within a second. `extraArgs(i)` adds flags per node.
 */
export async function startCluster(count: number, extraArgs: (i: number) => string[] = () => []): Promise<TestCluster> {
  // a node given --metrics-port serves /metrics and /readyz; the others serve nothing
  const redis = await startRedisServer()
  const nodes: ChildBroker[] = []
  const ports: number[] = []
  const start = async (i: number): Promise<ChildBroker> => {
    const node = await spawnBroker([
      '--redis', redis.url,
      '--node-id', `node${i + 1}`,
      '--port', String(ports[i] ?? 0),
      '--set', `cluster.heartbeatInterval=${HEARTBEAT_MS}`,
      ...(extraArgs(i).includes('--metrics-port') ? [] : ['--no-metrics']),
      ...extraArgs(i),
    ])
    nodes[i] = node
    ports[i] = node.port
    return node
  }
  try {
    for (let i = 0; i < count; i++) await start(i)
  } catch (err) {
    await Promise.all(nodes.map((n) => n.kill()))
    await redis.close()
    throw err
  }
  return {
    redis,
    nodes,
    url: (i) => `mqtt://127.0.0.1:${ports[i]}`,
    start,
    async close() {
      await Promise.all(nodes.map((n) => n.kill()))
      await redis.close()
    },
  }
}
