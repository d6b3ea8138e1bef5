import { Redis } from 'ioredis'
import type { Logger } from '../log/logger.js'
import { RedisPersistence } from '../persistence/redis-persistence.js'

/** A member of a shared subscription group, wherever in the cluster it is. */
export interface ShareMember {
  clientId: string
  /** the node it is connected to; '' while a persistent member is offline */
  node: string
  qos: number
  persistent: boolean
}

export type ShareChange = 'join' | 'offline' | 'leave'

/**
 * Who belongs to each shared subscription group across the cluster, and where each member is
 * connected. Every node holds the same view, so each one can pick the same member for a message
 * without asking anyone (see SharedSubscriptions).
 */
export interface ShareDirectory {
  readonly nodeId: string
  /** group keys (`{group}/{filter}`) with at least one member anywhere */
  groups(): string[]
  /** the group's members, sorted by client id (the same order on every node) */
  members(group: string): readonly ShareMember[]
  /**
   * Who may get the group's next message, in that order: the members connected anywhere, or, when
   * none is, the persistent ones (their queues). Cached until the group changes: read per message.
   */
  candidates(group: string): readonly ShareMember[]
  /**
   * A change made on this node. 'offline' and 'leave' only apply while the member is still
   * recorded on this node (or, for 'leave', offline): a connection that moved to another node
   * stays where it is.
   */
  record(group: string, change: ShareChange, member: Omit<ShareMember, 'node'>): void
  /** Members a dead node held: persistent ones go offline, the others leave. */
  nodeGone(node: string): void
  /** Called with a group key whenever its membership changes (here or elsewhere). */
  onChange(listener: (group: string) => void): void
  close(): Promise<void>
}

// The membership update and its announcement in one script, so every node receives the changes
// in the order Redis applied them.
// ARGV: prefix, group, client, change, node, member JSON.
const RECORD = `
local prefix, group, client, change, node, member = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = prefix .. 'share:' .. group
if change ~= 'join' then
  local current = redis.call('HGET', key, client)
  if not current then return 0 end
  local holder = cjson.decode(current).node
  -- an offline member may leave from any node (its session ended there)
  if holder ~= node and not (change == 'leave' and holder == '') then return 0 end
end
local value = ''
if change == 'leave' then
  redis.call('HDEL', key, client)
  if redis.call('HLEN', key) == 0 then redis.call('SREM', prefix .. 'shares', group) end
else
  value = member
  redis.call('HSET', key, client, value)
  redis.call('SADD', prefix .. 'shares', group)
end
redis.call('PUBLISH', prefix .. 'share-events', cjson.encode({group = group, client = client, member = value}))
return 1
`

// ARGV: prefix, node. Nothing while the node still renews its liveness key (see markAlive).
const NODE_GONE = `
local prefix, node = ARGV[1], ARGV[2]
if redis.call('EXISTS', prefix .. 'alive:' .. node) == 1 then return 0 end
for _, group in ipairs(redis.call('SMEMBERS', prefix .. 'shares')) do
  local key = prefix .. 'share:' .. group
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    local member = cjson.decode(entries[i + 1])
    if member.node == node then
      local value = ''
      if member.persistent then
        member.node = ''
        value = cjson.encode(member)
        redis.call('HSET', key, entries[i], value)
      else
        redis.call('HDEL', key, entries[i])
      end
      redis.call('PUBLISH', prefix .. 'share-events', cjson.encode({group = group, client = entries[i], member = value}))
    end
  end
  if redis.call('HLEN', key) == 0 then redis.call('SREM', prefix .. 'shares', group) end
end
return 1
`

type Scripted = Redis & {
  mqShareRecord(...args: Array<string | number>): Promise<number>
  mqShareNodeGone(...args: string[]): Promise<number>
}

/** The directory kept in Redis hashes and followed through a pub/sub channel. */
export async function createShareDirectory(url: string, prefix: string, nodeId: string, logger: Logger): Promise<ShareDirectory> {
  const { url: _url, ...options } = RedisPersistence.connectionOptions(url, `mqlite-${nodeId}-shares`)
  const redis = new Redis(url, options) as Scripted
  const events = new Redis(url, { ...options, connectionName: `mqlite-${nodeId}-shares-sub` })
  redis.defineCommand('mqShareRecord', { numberOfKeys: 0, lua: RECORD })
  redis.defineCommand('mqShareNodeGone', { numberOfKeys: 0, lua: NODE_GONE })
  const onError = (err: Error): void => logger.warn({ err: err.message }, 'Redis connection error (shared subscriptions)')
  redis.on('error', onError)
  events.on('error', onError)
  await Promise.all([redis.connect(), events.connect()])

  const view = new Map<string, Map<string, ShareMember>>()
  const sorted = new Map<string, ShareMember[]>()
  const pools = new Map<string, ShareMember[]>()
  const listeners: Array<(group: string) => void> = []
  const changed = (group: string): void => {
    sorted.delete(group)
    pools.delete(group)
    for (const listener of listeners) listener(group)
  }
  const apply = (group: string, clientId: string, json: string): void => {
    let members = view.get(group)
    if (json === '') {
      if (!members?.delete(clientId)) return
      if (members.size === 0) view.delete(group)
    } else {
      if (!members) view.set(group, (members = new Map()))
      members.set(clientId, { ...(JSON.parse(json) as Omit<ShareMember, 'clientId'>), clientId })
    }
    changed(group)
  }
  const load = async (): Promise<void> => {
    const groups = await redis.smembers(`${prefix}shares`)
    const pipeline = redis.pipeline()
    for (const group of groups) pipeline.hgetall(`${prefix}share:${group}`)
    const results = groups.length > 0 ? ((await pipeline.exec()) ?? []) : []
    const before = [...view.keys()]
    view.clear()
    groups.forEach((group, i) => {
      const [err, entries] = results[i] ?? [null, {}]
      if (err) throw err
      const members = new Map<string, ShareMember>()
      for (const [clientId, json] of Object.entries(entries as Record<string, string>)) {
        members.set(clientId, { ...(JSON.parse(json) as Omit<ShareMember, 'clientId'>), clientId })
      }
      if (members.size > 0) view.set(group, members)
    })
    for (const group of new Set([...before, ...view.keys()])) changed(group)
  }

  events.on('message', (_channel: string, message: string) => {
    const { group, client, member } = JSON.parse(message) as { group: string; client: string; member: string }
    apply(group, client, member)
  })
  await events.subscribe(`${prefix}share-events`)
  await load()
  // changes announced while the channel was down are lost: read the truth again
  events.on('ready', () => {
    load().catch((err: unknown) => logger.error({ err }, 'cannot reload shared subscription groups'))
  })

  const members = (group: string): ShareMember[] => {
    let list = sorted.get(group)
    if (!list) {
      list = [...(view.get(group)?.values() ?? [])].sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0))
      sorted.set(group, list)
    }
    return list
  }
  const report = (err: unknown): void => logger.error({ err }, 'cannot record a shared subscription change')
  let closing: Promise<void> | undefined
  return {
    nodeId,
    groups: () => [...view.keys()],
    members,
    candidates(group) {
      let pool = pools.get(group)
      if (!pool) {
        const all = members(group)
        const connected = all.filter((m) => m.node !== '')
        pool = connected.length > 0 ? connected : all.filter((m) => m.persistent)
        pools.set(group, pool)
      }
      return pool
    },
    record(group, change, member) {
      const node = change === 'offline' ? '' : nodeId
      const value = JSON.stringify({ node, qos: member.qos, persistent: member.persistent })
      redis.mqShareRecord(prefix, group, member.clientId, change, nodeId, value).catch(report)
    },
    nodeGone(node) {
      redis.mqShareNodeGone(prefix, node).catch(report)
    },
    onChange(listener) {
      listeners.push(listener)
    },
    close() {
      closing ??= Promise.allSettled([redis.quit(), events.quit()]).then(() => {
        redis.disconnect()
        events.disconnect()
      })
      return closing
    },
  }
}
