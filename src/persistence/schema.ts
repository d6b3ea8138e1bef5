import type { Database } from 'better-sqlite3'
import { SchemaTooNewError } from './errors.js'

/**
 * Seq numbers per body id (schema version 2): the copies of body b for one session are at
 * b * SEQ_PER_BODY + k, and a row whose body column is NULL belongs to body seq / SEQ_PER_BODY.
 * Written into migration 2 as the literal 1024.
 */
export const SEQ_PER_BODY = 1024

/** One forward step of the store schema. Steps are never edited once released: add a new one. */
export interface Migration {
  readonly version: number
  readonly description: string
  readonly up: string
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'retained, subscriptions, outgoing and incoming queues, wills, sessions',
    up: `
      CREATE TABLE retained (
        topic  TEXT PRIMARY KEY,
        packet BLOB NOT NULL
      );

      -- A rowid table so that subscriptionsByClient and getClientList keep subscription order;
      -- the whole subscription object (QoS, nl, rap, rh, identifier) is in sub.
      CREATE TABLE subscriptions (
        client_id TEXT    NOT NULL,
        topic     TEXT    NOT NULL,
        qos       INTEGER NOT NULL,
        sub       BLOB    NOT NULL,
        UNIQUE (client_id, topic)
      );
      CREATE INDEX subscriptions_by_topic ON subscriptions (topic);

      -- A queued message's packet, stored once however many sessions it is queued for. refs
      -- counts the outgoing rows pointing at it; the triggers below delete it with the last one.
      CREATE TABLE bodies (
        id             INTEGER PRIMARY KEY,
        broker_id      TEXT,
        broker_counter INTEGER,
        refs           INTEGER NOT NULL,
        packet         BLOB    NOT NULL
      );
      CREATE INDEX bodies_by_counter ON bodies (broker_counter, broker_id);

      -- One row per message (or PUBREL) owed to a session, in delivery order (seq).
      -- message_id is NULL while queued and set once the packet is in flight.
      CREATE TABLE outgoing (
        seq        INTEGER PRIMARY KEY,
        client_id  TEXT    NOT NULL,
        message_id INTEGER,
        bytes      INTEGER NOT NULL,
        body       INTEGER NOT NULL
      );
      -- (client_id) reads a session's queue in seq order; only in-flight rows have a packet id,
      -- so that index is partial and a queued insert never touches it; (body) is append-only.
      CREATE INDEX outgoing_by_client ON outgoing (client_id);
      CREATE INDEX outgoing_in_flight ON outgoing (client_id, message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX outgoing_by_body ON outgoing (body);
      CREATE TRIGGER outgoing_deleted AFTER DELETE ON outgoing BEGIN
        UPDATE bodies SET refs = refs - 1 WHERE id = old.body;
        DELETE FROM bodies WHERE id = old.body AND refs <= 0;
      END;
      CREATE TRIGGER outgoing_body_replaced AFTER UPDATE OF body ON outgoing WHEN old.body <> new.body BEGIN
        UPDATE bodies SET refs = refs - 1 WHERE id = old.body;
        DELETE FROM bodies WHERE id = old.body AND refs <= 0;
      END;

      -- QoS 2 publishes received and acknowledged with PUBREC, awaiting PUBREL.
      CREATE TABLE incoming (
        client_id  TEXT    NOT NULL,
        message_id INTEGER NOT NULL,
        packet     BLOB    NOT NULL,
        PRIMARY KEY (client_id, message_id)
      );

      CREATE TABLE wills (
        client_id TEXT PRIMARY KEY,
        broker_id TEXT NOT NULL,
        packet    BLOB NOT NULL
      );

      -- mqlite's own session bookkeeping (the aedes contract has none): expiry survives restarts.
      -- expires_at is NULL while connected and for sessions that never expire.
      CREATE TABLE sessions (
        client_id        TEXT PRIMARY KEY,
        protocol_version INTEGER NOT NULL,
        expiry_interval  INTEGER NOT NULL,
        connected_at     INTEGER NOT NULL,
        disconnected_at  INTEGER,
        expires_at       INTEGER
      );
      CREATE INDEX sessions_by_expiry ON sessions (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
  {
    version: 2,
    description: 'outgoing: one narrow WITHOUT ROWID row per queued copy, keyed by an integer session id',
    // Version 1 paid a rowid table plus three index entries per queued copy (one keyed by the
    // client id text). Now a copy is one small entry of (session, seq): the session's queue in
    // order, with no other index touched by an enqueue. A new copy's seq is
    // body * SEQ_PER_BODY + k (k: its copy number within the session for that message) and its
    // body column is NULL (the body is seq / SEQ_PER_BODY), so the copies of a message are found
    // from its body id by a primary-key range. The few rows with an explicit body (a PUBREL that
    // replaced its message, rows carried over from version 1, a 1025th copy) are in a partial
    // index. The store allocates body ids above every existing seq, so new rows sort after these.
    // Payload bytes (for the queue limits) move to the body: one number per message, not per copy.
    up: `
      CREATE TABLE clients (
        id        INTEGER PRIMARY KEY,
        client_id TEXT    NOT NULL UNIQUE
      );
      INSERT INTO clients (client_id) SELECT client_id FROM outgoing GROUP BY client_id ORDER BY MIN(seq);

      ALTER TABLE bodies ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
      UPDATE bodies SET bytes = COALESCE((SELECT o.bytes FROM outgoing o WHERE o.body = bodies.id LIMIT 1), 0);

      CREATE TABLE outgoing_v2 (
        session    INTEGER NOT NULL,
        seq        INTEGER NOT NULL,
        message_id INTEGER,
        body       INTEGER,
        PRIMARY KEY (session, seq)
      ) WITHOUT ROWID;
      INSERT INTO outgoing_v2 (session, seq, message_id, body)
        SELECT c.id, o.seq, o.message_id, o.body FROM outgoing o JOIN clients c ON c.client_id = o.client_id;
      -- drops its indexes and triggers too
      DROP TABLE outgoing;
      ALTER TABLE outgoing_v2 RENAME TO outgoing;

      CREATE INDEX outgoing_in_flight ON outgoing (session, message_id) WHERE message_id IS NOT NULL;
      CREATE INDEX outgoing_displaced ON outgoing (session, body) WHERE body IS NOT NULL;
      CREATE TRIGGER outgoing_deleted AFTER DELETE ON outgoing BEGIN
        UPDATE bodies SET refs = refs - 1 WHERE id = COALESCE(old.body, old.seq / 1024);
        DELETE FROM bodies WHERE id = COALESCE(old.body, old.seq / 1024) AND refs <= 0;
      END;
      CREATE TRIGGER outgoing_body_replaced AFTER UPDATE OF body ON outgoing
      WHEN COALESCE(old.body, old.seq / 1024) IS NOT COALESCE(new.body, new.seq / 1024) BEGIN
        UPDATE bodies SET refs = refs - 1 WHERE id = COALESCE(old.body, old.seq / 1024);
        DELETE FROM bodies WHERE id = COALESCE(old.body, old.seq / 1024) AND refs <= 0;
      END;
    `,
  },
  {
    version: 3,
    description: 'queued_runs: the copies queued for an offline session in one commit, as one row; bodies_by_counter without the broker id',
    // An offline session's copies (seqs as in outgoing, message_id and body NULL) go in as one
    // row per session and commit: seqs holds them ascending, as the first one and then
    // (gap, repeats) pairs of varints (queued-runs.ts); copies and bytes (payload bytes, for the
    // queue limits) are what they add to the session's queue. Each copy holds a reference on its
    // body, like an outgoing row. The store turns a session's runs into outgoing rows before
    // anything but an enqueue reads or changes its queue.
    up: `
      CREATE TABLE queued_runs (
        session   INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq  INTEGER NOT NULL,
        copies    INTEGER NOT NULL,
        bytes     INTEGER NOT NULL,
        seqs      BLOB    NOT NULL,
        PRIMARY KEY (session, first_seq)
      ) WITHOUT ROWID;

      -- Nearly every body carries the same broker id (this broker's, a UUID unless configured):
      -- in the index it took 37 of about 50 bytes per message and narrowed nothing down.
      -- Lookups by counter check it on the table row.
      DROP INDEX bodies_by_counter;
      CREATE INDEX bodies_by_counter ON bodies (broker_counter);
    `,
  },
]

export const LATEST_SCHEMA_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0)

/** The schema version recorded in the database; 0 for a new (empty) database. */
export function readSchemaVersion(db: Database): number {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get()
  if (table === undefined) return 0
  const row = db.prepare('SELECT MAX(version) AS version FROM schema_version').get() as { version: number | null }
  return row.version ?? 0
}

/**
 * Brings the schema to LATEST_SCHEMA_VERSION, one migration per transaction so that a crash
 * mid-way leaves a consistent, resumable version. A newer schema is refused before anything is
 * written to it. Returns the versions applied.
 */
export function migrate(db: Database, path: string, migrations: readonly Migration[] = MIGRATIONS): number[] {
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0)
  const current = readSchemaVersion(db)
  if (current > latest) throw new SchemaTooNewError(path, current, latest)
  const applied: number[] = []
  const pending = migrations.filter((m) => m.version > current).sort((a, b) => a.version - b.version)
  for (const migration of pending) {
    db.transaction(() => {
      db.exec(`CREATE TABLE IF NOT EXISTS schema_version (
        version    INTEGER PRIMARY KEY,
        applied_at INTEGER NOT NULL
      )`)
      db.exec(migration.up)
      db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)').run(migration.version, Date.now())
    })()
    applied.push(migration.version)
  }
  return applied
}
