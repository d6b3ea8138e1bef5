import type { Database, Statement } from 'better-sqlite3'

// Every SQL statement of the store, prepared once at setup. Grouped here so the persistence class
// reads as behaviour, and so the queries (and the indexes in schema.ts they rely on) sit together.

export interface OutgoingRow {
  seq: number
  message_id: number | null
  bytes: number
  packet: Buffer
}

interface SeqAndMessageId {
  seq: number
  message_id: number | null
}

type Id = string
type Blob = Buffer

export function prepareStatements(db: Database) {
  const s = <P extends unknown[], R = unknown>(sql: string): Statement<P, R> => db.prepare(sql) as Statement<P, R>
  return {
    // retained
    retainedExists: s<[topic: string], { one: 1 }>('SELECT 1 AS one FROM retained WHERE topic = ?'),
    retainedUpsert: s<[topic: string, packet: Blob]>(
      'INSERT INTO retained (topic, packet) VALUES (?, ?) ON CONFLICT (topic) DO UPDATE SET packet = excluded.packet',
    ),
    retainedDelete: s<[topic: string]>('DELETE FROM retained WHERE topic = ?'),
    retainedGet: s<[topic: string], { packet: Blob }>('SELECT packet FROM retained WHERE topic = ?'),
    // Topic-only pages over the primary-key index: wide filters (`+/status`) are matched in
    // JavaScript without reading the payloads of the topics they do not match.
    retainedTopicsFrom: s<[lower: string, limit: number], { topic: string }>(
      'SELECT topic FROM retained WHERE topic >= ? ORDER BY topic LIMIT ?',
    ),
    retainedTopicsBetween: s<[lower: string, upper: string, limit: number], { topic: string }>(
      'SELECT topic FROM retained WHERE topic >= ? AND topic < ? ORDER BY topic LIMIT ?',
    ),
    retainedCount: s<[], { n: number }>('SELECT COUNT(*) AS n FROM retained'),

    // subscriptions
    subscriptionUpsert: s<[clientId: Id, topic: string, qos: number, sub: Blob]>(
      `INSERT INTO subscriptions (client_id, topic, qos, sub) VALUES (?, ?, ?, ?)
       ON CONFLICT (client_id, topic) DO UPDATE SET qos = excluded.qos, sub = excluded.sub`,
    ),
    subscriptionDelete: s<[clientId: Id, topic: string]>('DELETE FROM subscriptions WHERE client_id = ? AND topic = ?'),
    subscriptionsDeleteClient: s<[clientId: Id]>('DELETE FROM subscriptions WHERE client_id = ?'),
    subscriptionsOfClient: s<[clientId: Id], { sub: Blob }>(
      'SELECT sub FROM subscriptions WHERE client_id = ? ORDER BY rowid',
    ),
    subscriptionsAll: s<[], { client_id: Id; sub: Blob }>('SELECT client_id, sub FROM subscriptions ORDER BY rowid'),
    clientsOfTopic: s<[topic: string], { client_id: Id }>(
      'SELECT client_id FROM subscriptions WHERE topic = ? ORDER BY rowid',
    ),

    // outgoing: rows per session, packets in bodies (shared by the sessions a message is queued for)
    bodyInsert: s<[brokerId: string | null, brokerCounter: number | null, refs: number, packet: Blob]>(
      'INSERT INTO bodies (broker_id, broker_counter, refs, packet) VALUES (?, ?, ?, ?)',
    ),
    bodySetRefs: s<[refs: number, id: number | bigint]>('UPDATE bodies SET refs = ? WHERE id = ?'),
    outgoingInsert: s<[clientId: Id, bytes: number, body: number | bigint]>(
      'INSERT INTO outgoing (client_id, message_id, bytes, body) VALUES (?, NULL, ?, ?)',
    ),
    outgoingMaxSeq: s<[], { seq: number | null }>('SELECT MAX(seq) AS seq FROM outgoing'),
    outgoingPage: s<[clientId: Id, after: number, upTo: number, limit: number], OutgoingRow>(
      `SELECT o.seq, o.message_id, o.bytes, b.packet FROM outgoing o JOIN bodies b ON b.id = o.body
       WHERE o.client_id = ? AND o.seq > ? AND o.seq <= ? ORDER BY o.seq LIMIT ?`,
    ),
    // By broker counter: the body first (its index), then that body's few rows. INDEXED BY: left
    // to itself the planner scans the whole session through outgoing_by_client.
    outgoingByCounter: s<[brokerCounter: number, brokerId: string, clientId: Id], SeqAndMessageId>(
      `SELECT seq, message_id FROM outgoing INDEXED BY outgoing_by_body
       WHERE body IN (SELECT id FROM bodies WHERE broker_counter = ? AND broker_id = ?) AND client_id = ?
       ORDER BY seq LIMIT 1`,
    ),
    // A different message that reuses the packet id (same broker, other counter) is never taken.
    outgoingByMessageIdOtherBroker: s<
      [clientId: Id, messageId: number, brokerId: string | null],
      { seq: number; message_id: number | null; bytes: number }
    >(
      `SELECT o.seq, o.message_id, o.bytes FROM outgoing o JOIN bodies b ON b.id = o.body
       WHERE o.client_id = ? AND o.message_id = ? AND (b.broker_id IS NULL OR b.broker_id IS NOT ?) ORDER BY o.seq LIMIT 1`,
    ),
    outgoingSetMessageId: s<[messageId: number | null, seq: number]>('UPDATE outgoing SET message_id = ? WHERE seq = ?'),
    outgoingReplace: s<[messageId: number | null, bytes: number, body: number | bigint, seq: number]>(
      'UPDATE outgoing SET message_id = ?, bytes = ?, body = ? WHERE seq = ?',
    ),
    // The three "take" queries read the row (with its packet) for the caller to delete by seq.
    outgoingFindByMessageId: s<[clientId: Id, messageId: number], OutgoingRow>(
      `SELECT o.seq, o.message_id, o.bytes, b.packet FROM outgoing o JOIN bodies b ON b.id = o.body
       WHERE o.client_id = ? AND o.message_id = ? ORDER BY o.seq LIMIT 1`,
    ),
    outgoingFindQueuedByCounter: s<[brokerCounter: number, brokerId: string, clientId: Id], OutgoingRow>(
      `SELECT o.seq, o.message_id, o.bytes, b.packet FROM outgoing o INDEXED BY outgoing_by_body JOIN bodies b ON b.id = o.body
       WHERE o.body IN (SELECT id FROM bodies WHERE broker_counter = ? AND broker_id = ?)
         AND o.client_id = ? AND o.message_id IS NULL
       ORDER BY o.seq LIMIT 1`,
    ),
    outgoingFindFirstQueued: s<[clientId: Id], OutgoingRow>(
      `SELECT o.seq, o.message_id, o.bytes, b.packet FROM outgoing o JOIN bodies b ON b.id = o.body
       WHERE o.client_id = ? AND o.message_id IS NULL ORDER BY o.seq LIMIT 1`,
    ),
    outgoingOldestQueued: s<[clientId: Id, limit: number], { seq: number; bytes: number }>(
      'SELECT seq, bytes FROM outgoing WHERE client_id = ? AND message_id IS NULL ORDER BY seq LIMIT ?',
    ),
    outgoingDeleteSeq: s<[seq: number]>('DELETE FROM outgoing WHERE seq = ?'),
    outgoingDeleteClient: s<[clientId: Id]>('DELETE FROM outgoing WHERE client_id = ?'),
    outgoingUsage: s<[], { client_id: Id; count: number; bytes: number; inflight: number }>(
      `SELECT client_id, COUNT(*) AS count, TOTAL(bytes) AS bytes, COUNT(message_id) AS inflight
       FROM outgoing GROUP BY client_id`,
    ),
    outgoingMaxCounter: s<[brokerId: string], { counter: number | null }>(
      'SELECT MAX(broker_counter) AS counter FROM bodies WHERE broker_id = ?',
    ),

    // incoming
    incomingUpsert: s<[clientId: Id, messageId: number, packet: Blob]>(
      `INSERT INTO incoming (client_id, message_id, packet) VALUES (?, ?, ?)
       ON CONFLICT (client_id, message_id) DO UPDATE SET packet = excluded.packet`,
    ),
    incomingGet: s<[clientId: Id, messageId: number], { packet: Blob }>(
      'SELECT packet FROM incoming WHERE client_id = ? AND message_id = ?',
    ),
    incomingDelete: s<[clientId: Id, messageId: number]>('DELETE FROM incoming WHERE client_id = ? AND message_id = ?'),
    incomingDeleteClient: s<[clientId: Id]>('DELETE FROM incoming WHERE client_id = ?'),

    // wills
    willUpsert: s<[clientId: Id, brokerId: string, packet: Blob]>(
      `INSERT INTO wills (client_id, broker_id, packet) VALUES (?, ?, ?)
       ON CONFLICT (client_id) DO UPDATE SET broker_id = excluded.broker_id, packet = excluded.packet`,
    ),
    willGet: s<[clientId: Id], { packet: Blob }>('SELECT packet FROM wills WHERE client_id = ?'),
    willDelete: s<[clientId: Id], { packet: Blob }>('DELETE FROM wills WHERE client_id = ? RETURNING packet'),
    willsAll: s<[], { broker_id: string; packet: Blob }>('SELECT broker_id, packet FROM wills ORDER BY rowid'),

    // sessions
    sessionUpsert: s<[clientId: Id, protocolVersion: number, expiryInterval: number, connectedAt: number]>(
      `INSERT INTO sessions (client_id, protocol_version, expiry_interval, connected_at, disconnected_at, expires_at)
       VALUES (?, ?, ?, ?, NULL, NULL)
       ON CONFLICT (client_id) DO UPDATE SET protocol_version = excluded.protocol_version,
         expiry_interval = excluded.expiry_interval, connected_at = excluded.connected_at,
         disconnected_at = NULL, expires_at = NULL`,
    ),
    sessionDisconnect: s<[{ clientId: Id; at: number; never: number }]>(
      `UPDATE sessions SET disconnected_at = @at,
         expires_at = CASE WHEN expiry_interval >= @never THEN NULL ELSE @at + expiry_interval * 1000 END
       WHERE client_id = @clientId`,
    ),
    // Sessions still marked connected were cut off by a crash: their expiry counts from now.
    sessionsDisconnectAll: s<[{ at: number; never: number }]>(
      `UPDATE sessions SET disconnected_at = @at,
         expires_at = CASE WHEN expiry_interval >= @never THEN NULL ELSE @at + expiry_interval * 1000 END
       WHERE disconnected_at IS NULL`,
    ),
    sessionsExpired: s<[now: number], { client_id: Id }>(
      'SELECT client_id FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at',
    ),
    sessionDelete: s<[clientId: Id]>('DELETE FROM sessions WHERE client_id = ?'),
    sessionExists: s<[clientId: Id], { one: 1 }>('SELECT 1 AS one FROM sessions WHERE client_id = ?'),
    sessionCount: s<[], { n: number }>('SELECT COUNT(*) AS n FROM sessions'),
    willDeleteClient: s<[clientId: Id]>('DELETE FROM wills WHERE client_id = ?'),
  }
}

export type Statements = ReturnType<typeof prepareStatements>
