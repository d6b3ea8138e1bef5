import type { Aedes, AedesPublishPacket } from 'aedes'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import type { RedisPersistence } from '../persistence/redis-persistence.js'
import { brokerInternals } from '../broker/aedes-internals.js'
import { createClusterBus } from './cluster-bus.js'
import { createShareDirectory, type ShareDirectory } from './share-directory.js'

type ClusterConfig = NonNullable<Config['cluster']>

/** [MQTT-3.1.4-3] DISCONNECT reason for a connection whose session another one took over. */
const SESSION_TAKEN_OVER = 0x8e
const NEW_CLIENTS = '$SYS/+/new/clients'
const HEARTBEATS = '$SYS/+/heartbeat'

type MqListener = (packet: AedesPublishPacket, done: () => void) => void
interface Mq {
  on(topic: string, listener: MqListener, done?: () => void): void
  removeListener(topic: string, listener: MqListener, done?: () => void): void
  _matcher: { match(topic: string): MqListener[] }
}

/**
 * One node of a cluster: its Redis store, the message bus, and what the nodes do for each other.
 * - A client id connecting on another node takes the session over: this node's connection gets
 *   DISCONNECT 0x8E (aedes would just close it) and this node's session-expiry and will-delay
 *   timers for that id are cancelled, so they never fire for a session that lives on elsewhere.
 * - Nodes that stop sending heartbeats and whose liveness key in Redis has lapsed are dead: their
 *   sessions start expiring. (aedes itself publishes their wills; the store makes sure only one
 *   survivor does, and only once the key has lapsed: a slow node is not a dead one.)
 * - `ready` is false while Redis is unreachable: the broker then refuses new connections and
 *   QoS 1/2 publishes, and /readyz answers 503, until both come back by themselves.
 */
export interface ClusterNode {
  /** shared subscription groups across the cluster */
  readonly shares: ShareDirectory
  readonly ready: boolean
  /** aedes options this node needs: the bus and the heartbeat period */
  readonly aedesOptions: { mq: object; heartbeatInterval: number; id: string }
  /** Once aedes exists: take over its cross-node handling. */
  attach(broker: Aedes): void
  /** Stops the node's timers and the bus (the store is closed by its owner). */
  close(): Promise<void>
}

export async function createClusterNode(
  cluster: ClusterConfig,
  nodeId: string,
  store: RedisPersistence,
  logger: Logger,
): Promise<ClusterNode> {
  const bus = await createClusterBus(cluster.redis.url, cluster.redis.keyPrefix, nodeId, cluster.connectTimeout, logger)
  const mq = bus.mq as Mq
  let shares: ShareDirectory
  try {
    shares = await createShareDirectory(cluster.redis.url, cluster.redis.keyPrefix, nodeId, logger)
  } catch (err) {
    await bus.close()
    throw err
  }
  let broker: Aedes | undefined
  const lastSeen = new Map<string, number>()
  let livenessTimer: NodeJS.Timeout | undefined

  // Registered before aedes's own listener (it is created with the broker), so it runs first.
  const onNewClient: MqListener = (packet, done) => {
    const origin = packet.topic.split('/')[1]
    if (!broker || origin === broker.id) return done()
    takeOver(broker, String(packet.payload), logger)
    done()
  }
  mq.on(NEW_CLIENTS, onNewClient)
  const onHeartbeat: MqListener = (packet, done) => {
    lastSeen.set(String(packet.payload), Date.now())
    done()
  }
  mq.on(HEARTBEATS, onHeartbeat)

  const checking = new Set<string>()
  const checkLiveness = (): void => {
    const deadline = Date.now() - 3 * cluster.heartbeatInterval
    for (const [node, seen] of lastSeen) {
      if (seen >= deadline || node === nodeId || checking.has(node)) continue
      checking.add(node)
      store
        .nodeGone(node)
        .then(
          (sessions) => {
            // still renewing its liveness key: slow, not dead; look again at the next tick
            if (sessions < 0) return
            lastSeen.delete(node)
            shares.nodeGone(node)
            logger.warn({ node, sessions }, 'cluster node stopped sending heartbeats; its sessions start expiring')
          },
          (err: unknown) => logger.error({ err, node }, 'cannot expire the sessions of a dead node'),
        )
        .finally(() => checking.delete(node))
    }
  }

  return {
    shares,
    get ready() {
      return store.ready && bus.ready
    },
    aedesOptions: { mq: bus.mq, heartbeatInterval: cluster.heartbeatInterval, id: nodeId },
    attach(aedes) {
      broker = aedes
      // aedes's own handler only closes the old connection: ours (above) replaces it
      for (const listener of mq._matcher.match(`$SYS/${nodeId}/new/clients`)) {
        if (listener.name === 'closeSameClients') mq.removeListener(NEW_CLIENTS, listener)
      }
      const renew = (): void => {
        store.markAlive(3 * cluster.heartbeatInterval).catch(() => {
          // Redis unreachable: the node is not ready anyway; the key lapses, as for a dead node
        })
      }
      renew()
      livenessTimer = setInterval(() => {
        renew()
        checkLiveness()
      }, cluster.heartbeatInterval)
      livenessTimer.unref()
    },
    async close() {
      clearInterval(livenessTimer)
      await Promise.all([bus.close(), shares.close()])
    },
  }
}

function takeOver(broker: Aedes, clientId: string, logger: Logger): void {
  const internals = brokerInternals(broker)
  internals.clearSessionExpiry(clientId)
  internals.clearDelayedWill(clientId)
  const client = internals.clients[clientId]
  if (!client || client.closed) return
  // like a takeover on one node: the closing connection must not expire or wipe the session
  internals._takingOver.add(clientId)
  logger.info({ clientId }, 'session taken over by a connection on another node')
  client.disconnect({ reasonCode: SESSION_TAKEN_OVER }, () => internals._takingOver.delete(clientId))
}
