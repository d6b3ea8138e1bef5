import type { Database, Statement } from 'better-sqlite3'
import { SEQ_PER_BODY } from './schema.js'

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

interface ByCounter {
  session: number
  brokerCounter: number
  brokerId: string
}

/** The body of outgoing row `o`: its own column, or (NULL there) derived from its seq. */
const BODY_OF_O = `COALESCE(o.body, o.seq / ${SEQ_PER_BODY})`

/**
 * The session's rows whose body has this broker id + counter (several bodies can: the offline
 * planner stores per-session variants of one message): those in their body's seq range, by
 * primary key, and those with an explicit body, by the partial index outgoing_displaced.
 */
function rowsOfCounter(columns: string, filter: string): string {
  // CROSS JOIN keeps bodies the outer loop, so that the seq range is known when outgoing is read.
  const from = 'bodies b CROSS JOIN outgoing o'
  const where = `b.broker_counter = @brokerCounter AND b.broker_id = @brokerId AND o.session = @session ${filter}`
  return `SELECT ${columns} FROM ${from}
      WHERE ${where} AND o.seq >= b.id * ${SEQ_PER_BODY} AND o.seq < b.id * ${SEQ_PER_BODY} + ${SEQ_PER_BODY} AND o.body IS NULL
    UNION ALL
    SELECT ${columns} FROM ${from} INDEXED BY outgoing_displaced WHERE ${where} AND o.body = b.id`
}

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
    // Whole pages, for a filter whose one wildcard is a trailing '#': nearly every topic of its
    // range matches, so reading the payloads of the few that do not costs less than a look-up each.
    retainedFrom: s<[lower: string, limit: number], { topic: string; packet: Blob }>(
      'SELECT topic, packet FROM retained WHERE topic >= ? ORDER BY topic LIMIT ?',
    ),
    retainedBetween: s<[lower: string, upper: string, limit: number], { topic: string; packet: Blob }>(
      'SELECT topic, packet FROM retained WHERE topic >= ? AND topic < ? ORDER BY topic LIMIT ?',
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

    // outgoing: one row per copy, keyed (session, seq); packets in bodies, shared by the sessions
    // a message is queued for. Sessions are integer ids (clients). See migration 2 in schema.ts.
    clientsAll: s<[], { id: number; client_id: Id }>('SELECT id, client_id FROM clients'),
    clientInsert: s<[session: number, clientId: Id]>('INSERT INTO clients (id, client_id) VALUES (?, ?)'),
    clientDelete: s<[session: number]>('DELETE FROM clients WHERE id = ?'),
    bodyInsert: s<[id: number, brokerId: string | null, brokerCounter: number | null, refs: number, bytes: number, packet: Blob]>(
      'INSERT INTO bodies (id, broker_id, broker_counter, refs, bytes, packet) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    bodyMaxId: s<[], { id: number | null }>('SELECT MAX(id) AS id FROM bodies'),
    // a copy whose body is not seq / SEQ_PER_BODY (a session's 1025th copy of one message)
    outgoingInsertDisplaced: s<[session: number, seq: number, body: number]>(
      'INSERT INTO outgoing (session, seq, body) VALUES (?, ?, ?)',
    ),
    outgoingPage: s<[session: number, after: number, upTo: number, limit: number], OutgoingRow>(
      `SELECT o.seq, o.message_id, b.bytes, b.packet FROM outgoing o JOIN bodies b ON b.id = ${BODY_OF_O}
       WHERE o.session = ? AND o.seq > ? AND o.seq <= ? ORDER BY o.seq LIMIT ?`,
    ),
    outgoingByCounter: s<[ByCounter], SeqAndMessageId>(
      `SELECT seq, message_id FROM (${rowsOfCounter('o.seq, o.message_id', '')}) ORDER BY seq LIMIT 1`,
    ),
    // A different message that reuses the packet id (same broker, other counter) is never taken.
    // INDEXED BY: without statistics the planner prefers walking the session in seq order.
    outgoingByMessageIdOtherBroker: s<
      [session: number, messageId: number, brokerId: string | null],
      { seq: number; message_id: number | null; bytes: number }
    >(
      `SELECT o.seq, o.message_id, b.bytes FROM outgoing o INDEXED BY outgoing_in_flight JOIN bodies b ON b.id = ${BODY_OF_O}
       WHERE o.session = ? AND o.message_id = ? AND (b.broker_id IS NULL OR b.broker_id IS NOT ?) ORDER BY o.seq LIMIT 1`,
    ),
    outgoingSetMessageId: s<[messageId: number | null, session: number, seq: number]>(
      'UPDATE outgoing SET message_id = ? WHERE session = ? AND seq = ?',
    ),
    // the hinted row (RowHints) when it is still queued: set by primary key, no search
    outgoingSetMessageIdIfQueued: s<[messageId: number | null, session: number, seq: number]>(
      'UPDATE outgoing SET message_id = ? WHERE session = ? AND seq = ? AND message_id IS NULL',
    ),
    outgoingAtSeq: s<[session: number, seq: number], OutgoingRow>(
      `SELECT o.seq, o.message_id, b.bytes, b.packet FROM outgoing o JOIN bodies b ON b.id = ${BODY_OF_O} WHERE o.session = ? AND o.seq = ?`,
    ),
    outgoingReplace: s<[messageId: number | null, body: number, session: number, seq: number]>(
      'UPDATE outgoing SET message_id = ?, body = ? WHERE session = ? AND seq = ?',
    ),
    // The three "take" queries read the row (with its packet) for the caller to delete by seq.
    // INDEXED BY: without statistics the planner prefers walking the session in seq order.
    outgoingFindByMessageId: s<[session: number, messageId: number], OutgoingRow>(
      `SELECT o.seq, o.message_id, b.bytes, b.packet FROM outgoing o INDEXED BY outgoing_in_flight JOIN bodies b ON b.id = ${BODY_OF_O}
       WHERE o.session = ? AND o.message_id = ? ORDER BY o.seq LIMIT 1`,
    ),
    outgoingFindQueuedByCounter: s<[ByCounter], OutgoingRow>(
      `SELECT seq, message_id, bytes, packet FROM (${rowsOfCounter('o.seq, o.message_id, b.bytes, b.packet', 'AND o.message_id IS NULL')})
       ORDER BY seq LIMIT 1`,
    ),
    outgoingFindFirstQueued: s<[session: number], OutgoingRow>(
      `SELECT o.seq, o.message_id, b.bytes, b.packet FROM outgoing o JOIN bodies b ON b.id = ${BODY_OF_O}
       WHERE o.session = ? AND o.message_id IS NULL ORDER BY o.seq LIMIT 1`,
    ),
    outgoingOldestQueued: s<[session: number, limit: number], { seq: number; bytes: number }>(
      `SELECT o.seq, b.bytes FROM outgoing o JOIN bodies b ON b.id = ${BODY_OF_O}
       WHERE o.session = ? AND o.message_id IS NULL ORDER BY o.seq LIMIT ?`,
    ),
    outgoingDeleteSeq: s<[session: number, seq: number]>('DELETE FROM outgoing WHERE session = ? AND seq = ?'),
    // drop-oldest: a row read ahead is deleted only if it is still queued
    outgoingDeleteQueued: s<[session: number, seq: number]>('DELETE FROM outgoing WHERE session = ? AND seq = ? AND message_id IS NULL'),
    // a hinted row, only if it still is the copy in flight with this packet id
    outgoingDeleteInFlight: s<[session: number, seq: number, messageId: number]>(
      'DELETE FROM outgoing WHERE session = ? AND seq = ? AND message_id = ?',
    ),
    outgoingDeleteSession: s<[session: number]>('DELETE FROM outgoing WHERE session = ?'),
    // rows and runs (queued_runs) together
    outgoingUsage: s<[], { client_id: Id; count: number; bytes: number; inflight: number; max_seq: number }>(
      `SELECT c.client_id, SUM(u.count) AS count, TOTAL(u.bytes) AS bytes, SUM(u.inflight) AS inflight, MAX(u.max_seq) AS max_seq
       FROM (
         SELECT o.session, COUNT(*) AS count, TOTAL(b.bytes) AS bytes, COUNT(o.message_id) AS inflight, MAX(o.seq) AS max_seq
         FROM outgoing o LEFT JOIN bodies b ON b.id = ${BODY_OF_O} GROUP BY o.session
         UNION ALL
         SELECT session, SUM(copies), TOTAL(bytes), 0, MAX(last_seq) FROM queued_runs GROUP BY session
       ) u JOIN clients c ON c.id = u.session GROUP BY u.session`,
    ),

    // queued runs (see queued-runs.ts and migration 3)
    runInsert: s<[session: number, firstSeq: number, lastSeq: number, copies: number, bytes: number, seqs: Blob]>(
      'INSERT INTO queued_runs (session, first_seq, last_seq, copies, bytes, seqs) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    runsOldest: s<[session: number, limit: number], { first_seq: number; copies: number; seqs: Blob }>(
      'SELECT first_seq, copies, seqs FROM queued_runs WHERE session = ? ORDER BY first_seq LIMIT ?',
    ),
    runsDeleteUpTo: s<[session: number, firstSeq: number]>('DELETE FROM queued_runs WHERE session = ? AND first_seq <= ?'),
    runFirstSeq: s<[session: number], { first_seq: number }>(
      'SELECT first_seq FROM queued_runs WHERE session = ? ORDER BY first_seq LIMIT 1',
    ),
    runSessions: s<[], { session: number }>('SELECT DISTINCT session FROM queued_runs'),
    // #materializeRuns's own savepoint: it runs inside writes that have none
    runsSavepoint: s<[]>('SAVEPOINT runs'),
    runsRelease: s<[]>('RELEASE runs'),
    runsRollback: s<[]>('ROLLBACK TO runs'),
    // down the counter index to the first body of this broker (MAX() with that filter reads them all;
    // INDEXED BY: without statistics the planner sorts a scan of the table)
    outgoingMaxCounter: s<[brokerId: string], { counter: number | null }>(
      'SELECT broker_counter AS counter FROM bodies INDEXED BY bodies_by_counter WHERE broker_id = ? ORDER BY broker_counter DESC LIMIT 1',
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

/** Rows per multi-row INSERT: more take several statements. */
export const INSERT_ROWS_MAX = 64

/**
 * `INSERT OR IGNORE INTO outgoing (session, seq) VALUES (?, ?), ...` for n rows (n <=
 * INSERT_ROWS_MAX), prepared on first use: the queued copies of a batch's messages go in that
 * many at a time.
 *
 * The multi-row inserts are OR IGNORE so that SQLite needs no statement journal for them (an
 * ABORT must undo the rows of a failing statement that went in before the failure): about 40%
 * less time per row. A row that is not inserted (a collision, which the ids handed out make
 * impossible) is still an error: the caller compares `changes` with n (runInserts).
 */
export function outgoingInsertRows(db: Database): (n: number) => Statement<number[]> {
  return insertRows(db, 'INSERT OR IGNORE INTO outgoing (session, seq) VALUES', '(?, ?)')
}

/** The same for copies that already went out: (session, seq, message_id) per row. */
export function outgoingInsertSentRows(db: Database): (n: number) => Statement<Array<number | null>> {
  return insertRows(db, 'INSERT OR IGNORE INTO outgoing (session, seq, message_id) VALUES', '(?, ?, ?)')
}

/** The values of one bodies row, in bodiesInsertRows order. */
export type BodyValues = [id: number, brokerId: string | null, brokerCounter: number | null, refs: number, bytes: number, packet: Blob]

/** `INSERT OR IGNORE INTO bodies ... VALUES (...), ...` for n rows, as outgoingInsertRows. */
export function bodiesInsertRows(db: Database): (n: number) => Statement<Array<BodyValues[number]>> {
  return insertRows(db, 'INSERT OR IGNORE INTO bodies (id, broker_id, broker_counter, refs, bytes, packet) VALUES', '(?, ?, ?, ?, ?, ?)')
}

/** Runs a multi-row insert of `rows` rows; throws if any of them was not inserted (OR IGNORE). */
export function runInserts<T>(statement: Statement<T[]>, values: T[], rows: number): void {
  const inserted = statement.run(...values).changes
  if (inserted !== rows) throw new Error(`${rows - inserted} of ${rows} rows collided with stored ones and were not inserted`)
}

function insertRows<T>(db: Database, insert: string, row: string): (n: number) => Statement<T[]> {
  const prepared: Array<Statement<T[]> | undefined> = []
  return (n) => (prepared[n] ??= db.prepare(`${insert} ${Array(n).fill(row).join(', ')}`) as Statement<T[]>)
}
