// The Redis store's multi-key updates as Lua scripts: Redis runs each one atomically, so a crash of
// any node (or of the connection) never leaves a queue entry half-removed or a counter off.
//
// Per session `q:<client>` is a sorted set of entry ids ordered by a global sequence, and
// `qd:<client>` one hash of everything about those entries:
//   m:<entry> packet id given to it (in flight)   i:<packet id> the entry holding that id
//   b:<entry> payload bytes                       p:<entry> the session's own packet (a PUBREL)
//   bytes     the session's queued payload bytes
// Packets are stored once per message in `body` (entry id -> packet) with a count of the sessions
// that hold it in `bodyref`. `stats` counts queued and in-flight entries over all sessions.
// Key names for a session are built here from the prefix: the store targets one Redis server (or
// a Sentinel-managed primary), not Redis Cluster, whose slots would need every key in KEYS.

const REMOVE_ENTRY = `
local function removeEntry(prefix, client, entry)
  local q = prefix .. 'q:' .. client
  local qd = prefix .. 'qd:' .. client
  if redis.call('ZREM', q, entry) == 0 then return false end
  local mid = redis.call('HGET', qd, 'm:' .. entry)
  if mid then
    redis.call('HDEL', qd, 'i:' .. mid, 'm:' .. entry)
    redis.call('HINCRBY', prefix .. 'stats', 'inflight', -1)
  else
    redis.call('HINCRBY', prefix .. 'stats', 'queued', -1)
  end
  local bytes = tonumber(redis.call('HGET', qd, 'b:' .. entry) or '0')
  if bytes ~= 0 then redis.call('HINCRBY', qd, 'bytes', -bytes) end
  redis.call('HDEL', qd, 'b:' .. entry, 'p:' .. entry)
  if redis.call('HINCRBY', prefix .. 'bodyref', entry, -1) <= 0 then
    redis.call('HDEL', prefix .. 'bodyref', entry)
    redis.call('HDEL', prefix .. 'body', entry)
  end
  return true
end
`

/** Forgets a client's will and what is kept about it. */
const DROP_WILL = `
local function dropWill(prefix, client)
  for _, hash in ipairs({'wills', 'willbroker', 'willdelay', 'willseen'}) do redis.call('HDEL', prefix .. hash, client) end
end
`

/** A session is no longer held by any node: its expiry clock starts at `at` (unless it never expires). */
const START_EXPIRY = `
local function startExpiry(prefix, client, at, never)
  local key = prefix .. 'session:' .. client
  redis.call('HSET', key, 'node', '', 'disconnectedAt', at)
  local expiry = redis.call('HGET', key, 'expiry')
  if expiry ~= never then redis.call('ZADD', prefix .. 'sessions:due', at + tonumber(expiry) * 1000, client) end
end
`

/**
 * ARGV: prefix, entry, packet, bytes, maxMessages, maxBytes, policy ('drop-oldest'|'refuse'),
 * origin broker id, its counter ('' if none), client ids... The highest counter queued per broker
 * is kept, so a node restarting with the same id counts on from there. Returns a flat list: 'd', client, dropped count (oldest dropped to make room),
 * or 'r', client (not queued: no room).
 */
export const ENQUEUE = `${REMOVE_ENTRY}
local prefix, entry, packet = ARGV[1], ARGV[2], ARGV[3]
local bytes, maxMessages, maxBytes, policy = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local broker, counter = ARGV[8], tonumber(ARGV[9])
local out, refs = {}, 0
for i = 10, #ARGV do
  local client = ARGV[i]
  local q = prefix .. 'q:' .. client
  local qd = prefix .. 'qd:' .. client
  if not redis.call('ZSCORE', q, entry) then
    local function fits()
      local count = redis.call('ZCARD', q)
      local used = tonumber(redis.call('HGET', qd, 'bytes') or '0')
      return (maxMessages == 0 or count + 1 <= maxMessages) and (maxBytes == 0 or used + bytes <= maxBytes)
    end
    local dropped = 0
    if not fits() and policy == 'drop-oldest' then
      -- oldest queued entries first; in-flight ones stay: the client holds their packet ids
      local start = 0
      while not fits() do
        local page = redis.call('ZRANGE', q, start, start + 63)
        if #page == 0 then break end
        for _, old in ipairs(page) do
          if fits() then break end
          if redis.call('HEXISTS', qd, 'm:' .. old) == 1 then
            start = start + 1
          else
            removeEntry(prefix, client, old)
            dropped = dropped + 1
          end
        end
      end
    end
    if dropped > 0 then
      out[#out + 1] = 'd'; out[#out + 1] = client; out[#out + 1] = tostring(dropped)
    end
    if fits() then
      local seq = redis.call('INCR', prefix .. 'seq')
      redis.call('ZADD', q, seq, entry)
      if bytes ~= 0 then
        redis.call('HSET', qd, 'b:' .. entry, bytes)
        redis.call('HINCRBY', qd, 'bytes', bytes)
      end
      redis.call('HINCRBY', prefix .. 'stats', 'queued', 1)
      refs = refs + 1
    else
      out[#out + 1] = 'r'; out[#out + 1] = client
    end
  end
end
if refs > 0 then
  redis.call('HSETNX', prefix .. 'body', entry, packet)
  redis.call('HINCRBY', prefix .. 'bodyref', entry, refs)
  if counter and counter > tonumber(redis.call('HGET', prefix .. 'counters', broker) or '0') then
    redis.call('HSET', prefix .. 'counters', broker, counter)
  end
end
return out
`

/**
 * ARGV: prefix, client, entry ('' if the packet has no broker id + counter), packet id ('' if
 * none), replacement packet ('' unless a PUBREL), its bytes. Returns 1 (packet id recorded),
 * 2 (packet replaced by the PUBREL) or 0 (nothing stored matches).
 */
export const UPDATE = `
local prefix, client, entry, mid, packet, bytes = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local q = prefix .. 'q:' .. client
local qd = prefix .. 'qd:' .. client
if entry ~= '' and redis.call('ZSCORE', q, entry) then
  local old = redis.call('HGET', qd, 'm:' .. entry)
  if old then
    redis.call('HDEL', qd, 'i:' .. old)
  elseif mid ~= '' then
    redis.call('HINCRBY', prefix .. 'stats', 'queued', -1)
    redis.call('HINCRBY', prefix .. 'stats', 'inflight', 1)
  end
  if mid ~= '' then
    redis.call('HSET', qd, 'm:' .. entry, mid, 'i:' .. mid, entry)
  elseif old then
    redis.call('HDEL', qd, 'm:' .. entry)
    redis.call('HINCRBY', prefix .. 'stats', 'inflight', -1)
    redis.call('HINCRBY', prefix .. 'stats', 'queued', 1)
  end
  return 1
end
if mid == '' or packet == '' then return 0 end
local held = redis.call('HGET', qd, 'i:' .. mid)
if not held then return 0 end
local previous = tonumber(redis.call('HGET', qd, 'b:' .. held) or '0')
redis.call('HSET', qd, 'p:' .. held, packet, 'b:' .. held, bytes)
redis.call('HINCRBY', qd, 'bytes', bytes - previous)
return 2
`

/**
 * ARGV: prefix, client, mode ('mid' | 'entry' | 'first'), value. Deletes the matching entry and
 * returns {packet, packet id or ''}, or an empty list.
 */
export const CLEAR = `${REMOVE_ENTRY}
local prefix, client, mode, value = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local q = prefix .. 'q:' .. client
local qd = prefix .. 'qd:' .. client
local entry
if mode == 'mid' then
  entry = redis.call('HGET', qd, 'i:' .. value)
elseif mode == 'entry' then
  if redis.call('ZSCORE', q, value) and redis.call('HEXISTS', qd, 'm:' .. value) == 0 then entry = value end
else
  local start = 0
  while not entry do
    local page = redis.call('ZRANGE', q, start, start + 63)
    if #page == 0 then break end
    for _, candidate in ipairs(page) do
      if redis.call('HEXISTS', qd, 'm:' .. candidate) == 0 then entry = candidate; break end
    end
    start = start + 64
  end
end
if not entry then return {} end
local packet = redis.call('HGET', qd, 'p:' .. entry) or redis.call('HGET', prefix .. 'body', entry)
local mid = redis.call('HGET', qd, 'm:' .. entry) or ''
removeEntry(prefix, client, entry)
if not packet then return {} end
return {packet, mid}
`

/**
 * ARGV: prefix, client, after (exclusive sequence), upTo (inclusive), limit. Returns a flat list
 * of entry, sequence, packet id or '', packet.
 */
export const PAGE = `
local prefix, client = ARGV[1], ARGV[2]
local q = prefix .. 'q:' .. client
local qd = prefix .. 'qd:' .. client
local rows = redis.call('ZRANGEBYSCORE', q, '(' .. ARGV[3], ARGV[4], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[5]))
local out = {}
for i = 1, #rows, 2 do
  local entry = rows[i]
  local packet = redis.call('HGET', qd, 'p:' .. entry) or redis.call('HGET', prefix .. 'body', entry)
  if packet then
    out[#out + 1] = entry
    out[#out + 1] = rows[i + 1]
    out[#out + 1] = redis.call('HGET', qd, 'm:' .. entry) or ''
    out[#out + 1] = packet
  end
end
return out
`

/** ARGV: prefix, client, entries... Deletes those still queued (not in flight); returns how many. */
export const DROP_QUEUED = `${REMOVE_ENTRY}
local prefix, client = ARGV[1], ARGV[2]
local qd = prefix .. 'qd:' .. client
local n = 0
for i = 3, #ARGV do
  if redis.call('HEXISTS', qd, 'm:' .. ARGV[i]) == 0 and removeEntry(prefix, client, ARGV[i]) then n = n + 1 end
end
return n
`

/** ARGV: prefix, client. Deletes the session's queue entries (bodies and counters kept right). */
export const EMPTY_QUEUE = `${REMOVE_ENTRY}
local prefix, client = ARGV[1], ARGV[2]
local q = prefix .. 'q:' .. client
local n = 0
repeat
  local page = redis.call('ZRANGE', q, 0, 255)
  for _, entry in ipairs(page) do removeEntry(prefix, client, entry); n = n + 1 end
until #page == 0
redis.call('DEL', q, prefix .. 'qd:' .. client)
return n
`

/**
 * ARGV: prefix, client, broker id ('' = any). Deletes the will if it was stored by that broker (a
 * node closing an old connection must not delete the will the new connection left on another
 * node). Returns the will or nil.
 */
export const DELETE_WILL = `${DROP_WILL}
local prefix, client, broker = ARGV[1], ARGV[2], ARGV[3]
local owner = redis.call('HGET', prefix .. 'willbroker', client)
if not owner then return nil end
if broker ~= '' and owner ~= broker then return nil end
local will = redis.call('HGET', prefix .. 'wills', client)
dropWill(prefix, client)
return will
`

/**
 * ARGV: prefix, client, broker id, now ms. The node that takes the will of a client whose broker
 * died publishes it; it is gone from the store for every other node (exactly once; a node that
 * dies between taking and publishing loses that will). A client already back
 * on another node has no will to publish (it is deleted); one whose Will Delay Interval has not
 * run out since its node was found dead waits for a later sweep. Returns the will or nil.
 */
export const CLAIM_WILL = `${DROP_WILL}
local prefix, client, broker, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HGET', prefix .. 'willbroker', client) ~= broker then return nil end
-- the broker still renews its liveness key: it is slow, not dead; its clients are connected
if redis.call('EXISTS', prefix .. 'alive:' .. broker) == 1 then return nil end
local session = prefix .. 'session:' .. client
local holder = redis.call('HGET', session, 'node')
if holder and holder ~= '' and holder ~= broker then
  dropWill(prefix, client)
  return nil
end
local delay = tonumber(redis.call('HGET', prefix .. 'willdelay', client) or '0')
if delay > 0 then
  local since = tonumber(redis.call('HGET', session, 'disconnectedAt') or '')
  if not holder then
    -- no session record (its node died before writing it): the delay counts from the first sweep
    redis.call('HSETNX', prefix .. 'willseen', client, now)
    since = tonumber(redis.call('HGET', prefix .. 'willseen', client))
  end
  if holder == broker or not since or since + delay * 1000 > now then return nil end
end
-- taken, not just claimed: the node that takes it publishes it; nobody else ever sees it again
local will = redis.call('HGET', prefix .. 'wills', client)
dropWill(prefix, client)
return will
`

/**
 * ARGV: prefix, client, node, at ms, never-expires value. Starts the session's expiry clock if
 * this node still holds it (another node may have taken it over meanwhile). Returns 1 if started.
 */
export const SESSION_DISCONNECTED = `${START_EXPIRY}
local prefix, client, node, at, never = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local key = prefix .. 'session:' .. client
if redis.call('EXISTS', key) == 0 then return 0 end
local holder = redis.call('HGET', key, 'node')
if holder and holder ~= '' and holder ~= node then return 0 end
startExpiry(prefix, client, at, never)
return 1
`

/**
 * ARGV: prefix, node, at ms, never, force ('1': the node's own next run). Every session this node
 * held starts expiring (it died), unless it still renews its liveness key (it is only slow):
 * then -1. Returns how many sessions it held.
 */
export const NODE_GONE = `${START_EXPIRY}
local prefix, node, at, never, force = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if force ~= '1' and redis.call('EXISTS', prefix .. 'alive:' .. node) == 1 then return -1 end
local n = 0
for _, client in ipairs(redis.call('SMEMBERS', prefix .. 'sessions')) do
  if redis.call('HGET', prefix .. 'session:' .. client, 'node') == node then
    startExpiry(prefix, client, at, never)
    n = n + 1
  end
end
return n
`

/** ARGV: prefix, now ms, limit. Claims (removes from the due set) and returns expired sessions. */
export const CLAIM_EXPIRED = `
local due = ARGV[1] .. 'sessions:due'
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZREM', due, id) end
return ids
`

/** ARGV: prefix, client. Deletes everything of a session except its queue (EMPTY_QUEUE does that). */
export const DELETE_SESSION = `${DROP_WILL}
local prefix, client = ARGV[1], ARGV[2]
redis.call('DEL', prefix .. 'subs:' .. client, prefix .. 'in:' .. client)
redis.call('SREM', prefix .. 'subs:clients', client)
dropWill(prefix, client)
redis.call('ZREM', prefix .. 'sessions:due', client)
local existed = redis.call('DEL', prefix .. 'session:' .. client)
redis.call('SREM', prefix .. 'sessions', client)
return existed
`
