import type { Aedes, PublishPacket } from 'aedes'
import type { Readable } from 'node:stream'
import type { Logger } from '../log/logger.js'
import { dropWillDelayInterval } from './will-delay.js'
import { brokerInternals, clientInternals } from './aedes-internals.js'

/** What a durable store offers beyond the aedes contract to keep sessions across restarts. */
export interface SessionStore {
  sessionConnected(clientId: string, info: { expiryIntervalSeconds: number; protocolVersion: number }): Promise<void>
  sessionDisconnected(clientId: string, atMs?: number): Promise<void>
  /** Sessions whose expiry is due; a shared store hands each one to a single node. */
  expiredSessions(nowMs?: number): string[] | Promise<string[]>
  deleteSession(clientId: string): Promise<void>
  streamWill(brokers?: Record<string, unknown>): Readable
  /**
   * A store shared by a cluster: the wills a previous run of this broker id left. Without it,
   * every will of a broker other than this one is a leftover (one broker owns the store).
   */
  streamOwnWills?(brokerId: string): Readable
  getWill(client: { id: string }): Promise<unknown>
  delWill(client: { id: string; brokerId?: string }): Promise<unknown>
  /** a store on a server: false while it is unreachable (the sweep waits for it) */
  readonly ready?: boolean
}

export function isSessionStore(store: object): store is SessionStore {
  return typeof (store as Partial<SessionStore>).expiredSessions === 'function'
}

export interface SessionLifecycle {
  close(): void
}

/**
 * aedes times session expiry and will delay in memory, so a restart (or a crash) forgets both.
 * With a durable store, mqlite records when each session disconnects and
 * - deletes every session whose Session Expiry Interval has run out, at start (time spent down
 *   counts) and then every `sweepMs` [MQTT-3.1.2-23];
 * - publishes at start the wills the previous run left behind (its clients lost their connection
 *   when it stopped), after their Will Delay Interval, unless the client is back by then
 *   [MQTT-3.1.3-9, MQTT-3.1.2-8].
 */
export function manageSessions(broker: Aedes, store: SessionStore, logger: Logger, sweepMs = 1000): SessionLifecycle {
  const internals = brokerInternals(broker)
  const report = (what: string) => (err: unknown) => logger.error({ err }, what)
  broker.on('clientReady', (client) => {
    const session = clientInternals(client)
    const info = { expiryIntervalSeconds: session.sessionExpiryInterval, protocolVersion: session.version ?? 4 }
    if (!session.closed) {
      store.sessionConnected(client.id, info).catch(report('cannot record a session'))
      return
    }
    // aedes says a client is ready after its last connect step (sending the stored queue), which
    // can end after the client left: its disconnect, already handled, must stay the last word. A
    // session that ended with the connection is gone; a kept one is recorded with its expiry
    // running (its disconnect found no record to update if it was new); one that another
    // connection has taken over belongs to that connection.
    const owner = internals.clients[client.id]
    if (info.expiryIntervalSeconds === 0 || (owner !== undefined && owner !== client)) return
    // issued together (every store applies its writes in call order), so that a new connection
    // for the same id cannot come in between
    Promise.all([store.sessionConnected(client.id, info), store.sessionDisconnected(client.id)]).catch(report('cannot record a session'))
  })
  broker.on('clientDisconnect', (client) => {
    // a new connection is taking this session over: it owns the record now
    if (internals._takingOver.has(client.id)) return
    const session = clientInternals(client)
    const ended = session.sessionExpiryInterval === 0
    ;(ended ? store.deleteSession(client.id) : store.sessionDisconnected(client.id)).catch(report('cannot record a disconnect'))
  })

  const expiring = new Set<string>()
  const sweep = async (): Promise<void> => {
    if (store.ready === false) return
    for (const clientId of await store.expiredSessions(Date.now())) {
      if (internals.clients[clientId] || expiring.has(clientId)) continue
      expiring.add(clientId)
      // [MQTT-3.1.2-10] a will still waiting (its delay outlasts the session) goes out now
      publishStoredWill(broker, store, logger, clientId)
        .then(() => store.deleteSession(clientId))
        .then(() => logger.info({ clientId }, 'session expired'), report('cannot delete an expired session'))
        .finally(() => expiring.delete(clientId))
    }
  }
  const sweepNow = (): void => {
    sweep().catch(report('cannot read expired sessions'))
  }
  sweepNow()
  const timer = setInterval(sweepNow, sweepMs)
  timer.unref()
  const willTimers = new Set<NodeJS.Timeout>()
  publishLeftoverWills(broker, store, logger, willTimers).catch(report('cannot read the wills left by the previous run'))

  return {
    close() {
      clearInterval(timer)
      for (const t of willTimers) clearTimeout(t)
      willTimers.clear()
    },
  }
}

/**
 * Publishes the will stored for a client, if any, and deletes it; with `brokerId`, only a will
 * that broker stored (a client back on another broker meanwhile has a will of its own).
 */
async function publishStoredWill(broker: Aedes, store: SessionStore, logger: Logger, clientId: string, brokerId?: string): Promise<void> {
  const will = (await store.getWill({ id: clientId })) as (PublishPacket & { brokerId?: string }) | undefined
  if (!will || (brokerId !== undefined && will.brokerId !== brokerId)) return
  dropWillDelayInterval(will)
  await new Promise<void>((resolve) => {
    broker.publish(will, (err) => {
      if (err) logger.error({ err, clientId }, 'cannot publish a will')
      else logger.info({ clientId, topic: will.topic }, 'published the will of a session that ended while away')
      resolve()
    })
  })
  await store.delWill({ id: clientId, ...(will.brokerId ? { brokerId: will.brokerId } : {}) })
}

async function publishLeftoverWills(broker: Aedes, store: SessionStore, logger: Logger, timers: Set<NodeJS.Timeout>): Promise<void> {
  const internals = brokerInternals(broker)
  const leftovers: Array<PublishPacket & { clientId: string; brokerId?: string }> = []
  const wills = store.streamOwnWills ? store.streamOwnWills(broker.id) : store.streamWill({ [broker.id]: Date.now() })
  for await (const will of wills) leftovers.push(will as (typeof leftovers)[number])
  for (const will of leftovers) {
    const delaySeconds = (will.properties as { willDelayInterval?: number } | undefined)?.willDelayInterval ?? 0
    const fire = (): void => {
      if (internals.clients[will.clientId]) return // back before the delay ran out: no will
      publishStoredWill(broker, store, logger, will.clientId, will.brokerId).catch((err: unknown) => logger.error({ err }, 'cannot publish a will'))
    }
    if (delaySeconds <= 0) {
      fire()
      continue
    }
    const timer = setTimeout(() => {
      timers.delete(timer)
      fire()
    }, delaySeconds * 1000)
    timer.unref()
    timers.add(timer)
  }
}
