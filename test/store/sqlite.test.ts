// The SQLite store: the shared contract, plus what only SQLite has — several processes on one
// file, a lock held too long (an outage), the expiry purge, and a clear error for a bad path.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { StoreUnavailableError } from '../../src/store/store.ts';
import { createStore } from '../../src/store/create.ts';
import { captureLog } from './log-capture.ts';
import { spawnOwned } from '../harness/processes.ts';
import { storeContract } from './store.contract.ts';

const silent = pino({ level: 'silent' });
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailward-store-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('sqlite store contract', () => {
  storeContract(async (prefix) => new SqliteStore({ path: join(dir, 'contract.db'), keyPrefix: prefix }, silent));
});

test('createStore opens SQLite in WAL mode, creating the folder', async (t) => {
  const path = join(dir, 'sub', 'folder', 'state.db');
  const store = await createStore(
    { backend: 'sqlite', sqlite: { path }, redis: { keyPrefix: 'mailward:', timeoutMs: 1000 } },
    silent,
  );
  t.after(() => store.close());
  assert.equal(store.backend, 'sqlite');
  await store.set('k', 'v');
  const raw = new Database(path, { readonly: true });
  t.after(() => raw.close());
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  assert.deepEqual(raw.prepare('SELECT key, value FROM entries').all(), [{ key: 'k', value: 'v' }]);
});

test('data survives closing and reopening the file', async () => {
  const path = join(dir, 'reopen.db');
  const a = new SqliteStore({ path }, silent);
  await a.incr('n', 41);
  await a.sadd('s', ['x', 'y']);
  await a.close();
  const b = new SqliteStore({ path }, silent);
  assert.equal(await b.incr('n'), 42);
  assert.equal(await b.scard('s'), 2);
  await b.close();
});

test('two processes on one file: counters add up and exactly one wins each first-seen race', async (t) => {
  const path = join(dir, 'two-procs.db');
  const rounds = 300;
  const store = new SqliteStore({ path, busyTimeoutMs: 5000 }, silent);
  t.after(() => store.close());
  const worker = spawnOwned(t, process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'sqlite-worker.ts'), path, String(rounds)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  worker.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  while (!out.includes('ready')) {
    assert.equal(worker.exitCode, null, 'worker exited early');
    await sleep(10);
  }
  worker.stdin!.write('go\n');
  let won = 0;
  for (let i = 0; i < rounds; i++) {
    await store.incr('shared', 1);
    if (await store.setIfAbsent(`first:${i}`, 'parent')) won++;
  }
  await new Promise((resolve) => worker.once('exit', resolve));
  const workerWon = Number(/won (\d+)/.exec(out)?.[1]);
  assert.equal(await store.get('shared'), String(2 * rounds));
  assert.equal(won + workerWon, rounds);
});

test('a lock held past the busy timeout is an outage: StoreUnavailableError, logged once, then recovery', async (t) => {
  const path = join(dir, 'locked.db');
  const cap = captureLog();
  const store = new SqliteStore({ path, busyTimeoutMs: 50 }, cap.log);
  t.after(() => store.close());
  await store.incr('n');

  const locker = new Database(path);
  t.after(() => locker.close());
  locker.exec('BEGIN IMMEDIATE');
  for (let i = 0; i < 3; i++) await assert.rejects(store.incr('n'), StoreUnavailableError);
  assert.equal(await store.get('n'), '1', 'WAL readers are not blocked by the writer');
  locker.exec('COMMIT');

  assert.equal(await store.incr('n'), 2);
  assert.equal(await store.incr('n'), 3);
  assert.equal(cap.count('store unavailable'), 1);
  assert.equal(cap.count('store recovered'), 1);
  const down = cap.lines.find((l) => l.msg === 'store unavailable');
  assert.equal(down?.store, 'sqlite');
  assert.match(String(down?.reason), /SQLITE_BUSY/);
});

test('purgeExpired removes expired rows from every table', async (t) => {
  const path = join(dir, 'purge.db');
  const store = new SqliteStore({ path }, silent);
  t.after(() => store.close());
  await store.set('a', 'x', 50);
  await store.sadd('s', ['1', '2', '3'], 50);
  await store.hincrMany('h', [['f', 1], ['g', 2]], 50);
  await store.set('keep', 'y');
  await sleep(80);
  assert.equal(await store.purgeExpired(), 3);
  const raw = new Database(path, { readonly: true });
  t.after(() => raw.close());
  const count = (table: string) => (raw.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  assert.equal(count('entries'), 1);
  assert.equal(count('set_members'), 0);
  assert.equal(count('hash_fields'), 0);
});

test('an unusable path fails at startup naming the setting', async () => {
  const file = join(dir, 'a-file');
  await writeFile(file, 'not a folder');
  assert.throws(() => new SqliteStore({ path: join(file, 'state.db') }, silent), /store\.sqlite\.path: cannot open the state database/);
  const junk = join(dir, 'junk.db');
  await writeFile(junk, 'this is not a database file, just text '.repeat(50));
  assert.throws(() => new SqliteStore({ path: junk }, silent), /store\.sqlite\.path: .*not a database/);
});
