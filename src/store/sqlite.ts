// The single-node state store: one SQLite file in WAL mode (better-sqlite3, synchronous calls
// behind the async Store interface). Read-modify-write operations run in BEGIN IMMEDIATE
// transactions so several processes on the same file stay atomic; expired keys are hidden on
// read, dropped on write, and purged in small batches by a timer.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../observe/log.ts';
import { OutageTracker } from './outage.ts';
import {
  StoreTypeError,
  StoreUnavailableError,
  checkInt,
  checkTtl,
  checkWindow,
  type SqliteStoreOptions,
  type Store,
  type StoreHealth,
  type StoreKind,
} from './store.ts';
import { slide, type WindowState } from './window.ts';

const SCHEMA_VERSION = 1;
const STRING = 0;
const SET = 1;
const HASH = 2;
const KIND_NAMES: readonly StoreKind[] = ['string', 'set', 'hash'];
const SCAN_PAGE = 500;
const PURGE_BATCH = 256;
const PURGE_EVERY_MS = 30_000;

// Every key has one row in `entries` (its kind and expiry); set members and hash fields live in
// their own tables keyed by (key, member/field). WITHOUT ROWID: the primary key is the lookup.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS entries (
  key        TEXT PRIMARY KEY,
  kind       INTEGER NOT NULL,
  value      TEXT,
  expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS set_members (
  key    TEXT NOT NULL,
  member TEXT NOT NULL,
  PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hash_fields (
  key   TEXT NOT NULL,
  field TEXT NOT NULL,
  value INTEGER NOT NULL,
  PRIMARY KEY (key, field)
) WITHOUT ROWID;
`;

interface EntryRow {
  kind: number;
  value: string | null;
  exp: number | null;
}

// Error codes that mean "cannot answer now" (locked by another process past the busy timeout,
// disk full, I/O error, file gone): the caller should defer, not fail the message.
const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL|NOMEM|CORRUPT|NOTADB)/;

// Same rule as Redis's string2ll, so a value INCR refuses on one backend is refused on the other.
const INTEGER = /^(0|-?[1-9][0-9]*)$/;

function prepareAll(db: Database.Database) {
  return {
    getEntry: db.prepare<[string], EntryRow>('SELECT kind, value, expires_at AS exp FROM entries WHERE key = ?'),
    insEntry: db.prepare<[string, number, string | null, number | null]>('INSERT INTO entries (key, kind, value, expires_at) VALUES (?, ?, ?, ?)'),
    updValue: db.prepare<[string, string]>('UPDATE entries SET value = ? WHERE key = ?'),
    updExpiry: db.prepare<[number | null, string]>('UPDATE entries SET expires_at = ? WHERE key = ?'),
    delEntry: db.prepare<[string]>('DELETE FROM entries WHERE key = ?'),
    delMembers: db.prepare<[string]>('DELETE FROM set_members WHERE key = ?'),
    delFields: db.prepare<[string]>('DELETE FROM hash_fields WHERE key = ?'),
    insMember: db.prepare<[string, string]>('INSERT OR IGNORE INTO set_members (key, member) VALUES (?, ?)'),
    countMembers: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM set_members WHERE key = ?'),
    hasMember: db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM set_members WHERE key = ? AND member = ?'),
    listMembers: db.prepare<[string], { member: string }>('SELECT member FROM set_members WHERE key = ?'),
    addField: db.prepare<[string, string, number]>(
      'INSERT INTO hash_fields (key, field, value) VALUES (?, ?, ?) ON CONFLICT (key, field) DO UPDATE SET value = value + excluded.value',
    ),
    putField: db.prepare<[string, string, number]>(
      'INSERT INTO hash_fields (key, field, value) VALUES (?, ?, ?) ON CONFLICT (key, field) DO UPDATE SET value = excluded.value',
    ),
    // One statement for any number of fields: the list goes in as a JSON array, json_each.key is
    // its index, and each field is a primary-key lookup. CROSS JOIN fixes that order: with a plain
    // JOIN the planner may scan every field of the hash per field asked (a Bayes bucket has ~54,000).
    getFields: db.prepare<[string, string], { i: number; v: number }>(
      'SELECT CAST(j.key AS INTEGER) AS i, h.value AS v FROM json_each(?) AS j CROSS JOIN hash_fields AS h ON h.key = ? AND h.field = j.value',
    ),
    allFields: db.prepare<[string], { field: string; value: number }>('SELECT field, value FROM hash_fields WHERE key = ?'),
    windowFields: db.prepare<[string], { field: string; value: number }>(
      "SELECT field, value FROM hash_fields WHERE key = ? AND field IN ('b', 'c', 'p')",
    ),
    scanFirst: db.prepare<[string, string], { key: string; exp: number | null }>(
      `SELECT key, expires_at AS exp FROM entries WHERE key >= ? AND key < ? ORDER BY key LIMIT ${SCAN_PAGE}`,
    ),
    scanNext: db.prepare<[string, string], { key: string; exp: number | null }>(
      `SELECT key, expires_at AS exp FROM entries WHERE key > ? AND key < ? ORDER BY key LIMIT ${SCAN_PAGE}`,
    ),
    expired: db.prepare<[number], { key: string; kind: number }>(
      `SELECT key, kind FROM entries WHERE expires_at <= ? LIMIT ${PURGE_BATCH}`,
    ),
    ping: db.prepare<[], { one: number }>('SELECT 1 AS one'),
  };
}

function openDatabase(path: string, busyTimeoutMs: number): Database.Database {
  let db: Database.Database | undefined;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    db = new Database(path, { timeout: busyTimeoutMs });
    // WAL: readers never block the writer and a commit is one append. synchronous=NORMAL: in WAL
    // mode a power loss can only roll back the last commits, never corrupt the file — an
    // acceptable loss for counters and greylist entries, for a large saving in fsyncs.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`the file has schema version ${version}, newer than this release understands (${SCHEMA_VERSION})`);
    }
    db.exec(SCHEMA);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    return db;
  } catch (err) {
    db?.close();
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `store.sqlite.path: cannot open the state database '${path}': ${why}. ` +
        'Fix: point store.sqlite.path at a writable file in the data folder (the folder must be writable by the Mailward user), or use a new file.',
      { cause: err },
    );
  }
}

export class SqliteStore implements Store {
  readonly backend = 'sqlite' as const;
  readonly keyPrefix: string;
  private readonly db: Database.Database;
  private readonly s: ReturnType<typeof prepareAll>;
  private readonly outage: OutageTracker;
  private readonly purgeTimer: NodeJS.Timeout;
  private closed = false;

  // Read-modify-write steps; each runs as BEGIN IMMEDIATE so the write lock is taken up front
  // (a deferred transaction that upgrades can fail with SQLITE_BUSY without waiting).
  private readonly txIncr;
  private readonly txSet;
  private readonly txSetMany;
  private readonly txSetIfAbsent;
  private readonly txDel;
  private readonly txSadd;
  private readonly txHincr;
  private readonly txHit;
  private readonly txPurge;

  constructor(opts: SqliteStoreOptions, log: Logger) {
    this.keyPrefix = opts.keyPrefix ?? '';
    this.db = openDatabase(opts.path, opts.busyTimeoutMs ?? 1000);
    this.s = prepareAll(this.db);
    this.outage = new OutageTracker(log, 'sqlite');
    const s = this.s;

    this.txIncr = this.db.transaction((full: string, key: string, by: number, ttl: number, now: number): number => {
      const row = this.live(full, now);
      if (row === undefined) {
        s.insEntry.run(full, STRING, String(by), ttl > 0 ? now + ttl : null);
        return by;
      }
      this.expect(row, STRING, key);
      if (row.value === null || !INTEGER.test(row.value)) throw new StoreTypeError(key, `key '${key}' does not hold an integer`);
      const n = Number(row.value) + by;
      if (!Number.isSafeInteger(n)) throw new StoreTypeError(key, `counter '${key}' would overflow`);
      s.updValue.run(String(n), full);
      return n;
    });

    const setRow = (full: string, value: string, ttl: number, now: number): void => {
      const row = s.getEntry.get(full);
      if (row !== undefined) this.drop(full, row.kind);
      s.insEntry.run(full, STRING, value, ttl > 0 ? now + ttl : null);
    };
    this.txSet = this.db.transaction(setRow);
    // A plain loop inside one transaction: a nested transaction would be a savepoint per row.
    this.txSetMany = this.db.transaction((rows: ReadonlyArray<readonly [string, string, number]>, now: number): void => {
      for (const [full, value, ttl] of rows) setRow(full, value, ttl, now);
    });

    this.txSetIfAbsent = this.db.transaction((full: string, value: string, ttl: number, now: number): boolean => {
      if (this.live(full, now) !== undefined) return false;
      s.insEntry.run(full, STRING, value, ttl > 0 ? now + ttl : null);
      return true;
    });

    this.txDel = this.db.transaction((full: string, now: number): boolean => {
      const row = s.getEntry.get(full);
      if (row === undefined) return false;
      this.drop(full, row.kind);
      return row.exp === null || row.exp > now;
    });

    this.txSadd = this.db.transaction((full: string, key: string, members: readonly string[], ttl: number, now: number): number => {
      const row = this.live(full, now);
      if (row === undefined) s.insEntry.run(full, SET, null, ttl > 0 ? now + ttl : null);
      else this.expect(row, SET, key);
      let added = 0;
      for (const m of members) added += s.insMember.run(full, m).changes;
      return added;
    });

    this.txHincr = this.db.transaction(
      (full: string, key: string, entries: ReadonlyArray<readonly [string, number]>, ttl: number, now: number): void => {
        const row = this.live(full, now);
        if (row === undefined) s.insEntry.run(full, HASH, null, ttl > 0 ? now + ttl : null);
        else this.expect(row, HASH, key);
        for (const [field, delta] of entries) s.addField.run(full, field, delta);
      },
    );

    this.txHit = this.db.transaction((full: string, key: string, windowMs: number, by: number, now: number): number => {
      const row = this.live(full, now);
      let state: WindowState | undefined;
      if (row !== undefined) {
        this.expect(row, HASH, key);
        const f = new Map(s.windowFields.all(full).map((r) => [r.field, r.value]));
        const b = f.get('b');
        if (b !== undefined) state = { b, c: f.get('c') ?? 0, p: f.get('p') ?? 0 };
      }
      const { next, estimate } = slide(state, now, windowMs, by);
      if (by === 0) return estimate; // a pure read must not extend the key's life
      // The key outlives its two buckets by nothing: after 2 windows p would count for 0 anyway.
      const exp = now + 2 * windowMs;
      if (row === undefined) s.insEntry.run(full, HASH, null, exp);
      else s.updExpiry.run(exp, full);
      s.putField.run(full, 'b', next.b);
      s.putField.run(full, 'c', next.c);
      s.putField.run(full, 'p', next.p);
      return estimate;
    });

    this.txPurge = this.db.transaction((now: number): number => {
      const rows = s.expired.all(now);
      for (const r of rows) this.drop(r.key, r.kind);
      return rows.length;
    });

    this.purgeTimer = setInterval(() => {
      this.purgeExpired().catch(() => {
        /* run() has logged the outage; the next tick retries */
      });
    }, PURGE_EVERY_MS);
    this.purgeTimer.unref();
  }

  async incr(key: string, by = 1, ttlMs?: number): Promise<number> {
    checkInt('by', by);
    const ttl = checkTtl(ttlMs);
    return this.run((now) => this.txIncr.immediate(this.full(key), key, by, ttl, now));
  }

  async hit(key: string, windowMs: number, by = 1): Promise<number> {
    checkWindow(windowMs, by);
    return this.run((now) => this.txHit.immediate(this.full(key), key, windowMs, by, now));
  }

  async get(key: string): Promise<string | null> {
    return this.run((now) => {
      const row = this.read(this.full(key), now);
      if (row === undefined) return null;
      this.expect(row, STRING, key);
      return row.value;
    });
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    const ttl = checkTtl(ttlMs);
    return this.run((now) => this.txSet.immediate(this.full(key), value, ttl, now));
  }

  async setMany(entries: ReadonlyArray<readonly [key: string, value: string, ttlMs?: number]>): Promise<void> {
    const rows = entries.map(([key, value, ttlMs]) => [this.full(key), value, checkTtl(ttlMs)] as const);
    if (rows.length > 0) return this.run((now) => this.txSetMany.immediate(rows, now));
  }

  async setIfAbsent(key: string, value: string, ttlMs?: number): Promise<boolean> {
    const ttl = checkTtl(ttlMs);
    return this.run((now) => {
      const full = this.full(key);
      // The common greylist case is "already seen": answer it without taking the write lock.
      if (this.read(full, now) !== undefined) return false;
      return this.txSetIfAbsent.immediate(full, value, ttl, now);
    });
  }

  async del(key: string): Promise<boolean> {
    return this.run((now) => this.txDel.immediate(this.full(key), now));
  }

  async ttl(key: string): Promise<number | null> {
    return this.run((now) => {
      const row = this.read(this.full(key), now);
      if (row === undefined) return null;
      return row.exp === null ? Infinity : row.exp - now;
    });
  }

  async type(key: string): Promise<StoreKind | null> {
    return this.run((now) => {
      const row = this.read(this.full(key), now);
      return row === undefined ? null : (KIND_NAMES[row.kind] ?? null);
    });
  }

  async sadd(key: string, members: readonly string[], ttlMs?: number): Promise<number> {
    const ttl = checkTtl(ttlMs);
    if (members.length === 0) return 0; // as in Redis, an empty set does not exist
    return this.run((now) => this.txSadd.immediate(this.full(key), key, members, ttl, now));
  }

  async scard(key: string): Promise<number> {
    return this.run((now) => {
      const full = this.full(key);
      const row = this.read(full, now);
      if (row === undefined) return 0;
      this.expect(row, SET, key);
      return this.s.countMembers.get(full)?.n ?? 0;
    });
  }

  async sismember(key: string, member: string): Promise<boolean> {
    return this.run((now) => {
      const full = this.full(key);
      const row = this.read(full, now);
      if (row === undefined) return false;
      this.expect(row, SET, key);
      return this.s.hasMember.get(full, member) !== undefined;
    });
  }

  async smembers(key: string): Promise<string[]> {
    return this.run((now) => {
      const full = this.full(key);
      const row = this.read(full, now);
      if (row === undefined) return [];
      this.expect(row, SET, key);
      return this.s.listMembers.all(full).map((r) => r.member);
    });
  }

  async hincrMany(key: string, entries: ReadonlyArray<readonly [string, number]>, ttlMs?: number): Promise<void> {
    const ttl = checkTtl(ttlMs);
    for (const [, delta] of entries) checkInt('delta', delta);
    if (entries.length === 0) return;
    return this.run((now) => this.txHincr.immediate(this.full(key), key, entries, ttl, now));
  }

  async hmget(key: string, fields: readonly string[]): Promise<number[]> {
    return this.run((now) => {
      const full = this.full(key);
      const out = new Array<number>(fields.length).fill(0);
      const row = this.read(full, now);
      if (row === undefined || fields.length === 0) return out;
      this.expect(row, HASH, key);
      for (const r of this.s.getFields.all(JSON.stringify(fields), full)) out[r.i] = r.v;
      return out;
    });
  }

  async hgetall(key: string): Promise<Map<string, number>> {
    return this.run((now) => {
      const full = this.full(key);
      const row = this.read(full, now);
      if (row === undefined) return new Map<string, number>();
      this.expect(row, HASH, key);
      return new Map(this.s.allFields.all(full).map((r) => [r.field, r.value]));
    });
  }

  async *scan(prefix = ''): AsyncGenerator<string> {
    const lo = this.keyPrefix + prefix;
    // U+10FFFF is the largest code point, so every key that starts with `lo` sorts below this
    // (SQLite's BINARY collation compares UTF-8 bytes, which keeps code point order).
    const hi = lo + '\u{10FFFF}';
    let after: string | undefined;
    for (;;) {
      const { rows, now } = await this.run((now) => ({
        rows: after === undefined ? this.s.scanFirst.all(lo, hi) : this.s.scanNext.all(after, hi),
        now,
      }));
      for (const r of rows) {
        if ((r.exp !== null && r.exp <= now) || !r.key.startsWith(lo)) continue;
        yield r.key.slice(this.keyPrefix.length);
      }
      const last = rows.at(-1);
      if (rows.length < SCAN_PAGE || last === undefined) return;
      after = last.key;
    }
  }

  /** Deletes expired keys in small transactions for at most `budgetMs` (the calls are
   * synchronous, so a long purge would stall the event loop); returns how many it removed. */
  async purgeExpired(budgetMs = 20): Promise<number> {
    const until = Date.now() + budgetMs;
    let total = 0;
    for (;;) {
      const n = await this.run((now) => this.txPurge.immediate(now));
      total += n;
      if (n < PURGE_BATCH || Date.now() >= until) return total;
    }
  }

  async health(): Promise<StoreHealth> {
    if (this.closed) return { backend: 'sqlite', ok: false, error: 'the store is closed' };
    const t0 = performance.now();
    try {
      this.s.ping.get();
      return { backend: 'sqlite', ok: true, latencyMs: performance.now() - t0 };
    } catch (err) {
      return { backend: 'sqlite', ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.purgeTimer);
    this.db.close();
  }

  private full(key: string): string {
    return this.keyPrefix + key;
  }

  /** The entry as a reader sees it: an expired row counts as absent. */
  private read(full: string, now: number): EntryRow | undefined {
    const row = this.s.getEntry.get(full);
    return row === undefined || (row.exp !== null && row.exp <= now) ? undefined : row;
  }

  /** Inside a write transaction: like read(), and an expired row is removed so it can be reused. */
  private live(full: string, now: number): EntryRow | undefined {
    const row = this.s.getEntry.get(full);
    if (row !== undefined && row.exp !== null && row.exp <= now) {
      this.drop(full, row.kind);
      return undefined;
    }
    return row;
  }

  private drop(full: string, kind: number): void {
    if (kind === SET) this.s.delMembers.run(full);
    else if (kind === HASH) this.s.delFields.run(full);
    this.s.delEntry.run(full);
  }

  private expect(row: EntryRow, kind: number, key: string): void {
    if (row.kind !== kind) {
      throw new StoreTypeError(key, `key '${key}' holds a ${KIND_NAMES[row.kind] ?? 'value'}, not a ${KIND_NAMES[kind] ?? 'value'}`);
    }
  }

  private async run<T>(fn: (now: number) => T): Promise<T> {
    if (this.closed) throw new StoreUnavailableError('sqlite', 'the store is closed');
    const generation = this.outage.generation;
    let result: T;
    try {
      result = fn(Date.now());
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (err instanceof Database.SqliteError && typeof code === 'string' && UNAVAILABLE_CODES.test(code)) {
        this.outage.markDown(`${code}: ${err.message}`, generation);
        throw new StoreUnavailableError('sqlite', `state database unavailable: ${err.message}`, { cause: err });
      }
      throw err;
    }
    this.outage.markUp();
    return result;
  }
}
