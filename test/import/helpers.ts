// Imports a fixture Postfix server (test/fixtures/postfix/<name>, a copy of its /etc) with the
// real importer into a temporary folder, and starts a real Mailward on the written config and
// directory — moved to loopback port 0 and the test's DNS, nothing else changed unless a test says so.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { parse } from 'yaml';
import { importPostfix, type ImportResult } from '../../src/import/postfix/write.ts';
import { openDirectory } from '../../src/app/accounts.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { dial, type Dialog } from '../harness/dial.ts';

export const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/postfix');

export interface Imported {
  readonly dir: string;
  readonly out: string;
  readonly result: ImportResult;
  /** The config as written (parsed YAML). */
  readonly written: Record<string, unknown>;
}

export async function importFixture(t: TestContext, name: string, opts: { postconf?: string | false } = {}): Promise<Imported> {
  const dir = mkdtempSync(path.join(tmpdir(), `mailward-import-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'mailward.yaml');
  const result = await importPostfix({ root: path.join(FIXTURES, name), configDir: '/etc/postfix', out, dryRun: false, postconf: opts.postconf ?? 'postconf' });
  return { dir, out, result, written: parse(readFileSync(out, 'utf8')) as Record<string, unknown> };
}

/**
 * The written config, for a test server: every listener on 127.0.0.1 port 0 (their kinds, auth
 * and pipelines as written), dataDir and password files absolute, `patch` applied last. The
 * loopback acknowledgement the harness adds for trusted networks is refused on purpose: the
 * imported config must load without it.
 */
/** A nested object of the parsed YAML (plain data), to read or patch by key. */
export const obj = (v: unknown): Record<string, unknown> => (v ?? {}) as Record<string, unknown>;

export function forTest(imp: Imported, patch: (c: Record<string, unknown>) => void = () => {}): Record<string, unknown> {
  const c = structuredClone(imp.written);
  for (const l of Object.values(obj(c.listeners))) Object.assign(obj(l), { host: '127.0.0.1', port: 0 });
  c.dataDir = path.join(imp.dir, 'data');
  delete c.tls; // the old server's certificate files are not on this machine; a self-signed pair is made
  for (const h of Object.values(obj(obj(c.delivery).smarthosts))) {
    const auth = obj(h).auth as { passwordFile?: string } | undefined;
    if (auth?.passwordFile) auth.passwordFile = path.join(imp.dir, auth.passwordFile);
  }
  c.relay = { ...obj(c.relay), allowLocalTrust: undefined };
  c.queue = { fsync: false };
  patch(c);
  return c;
}

export async function start(t: TestContext, imp: Imported, config: Record<string, unknown>): Promise<TestServer> {
  return startServer(t, { config, dataDir: path.join(imp.dir, 'data') });
}

async function withDirectory(srv: TestServer, fn: (dir: ReturnType<typeof openDirectory>) => Promise<unknown>): Promise<void> {
  const dir = openDirectory(srv.config);
  try {
    await fn(dir);
  } finally {
    dir.close();
  }
}

/** Sets a mailbox's password as `mailward user passwd` does (imported mailboxes get random ones). */
export async function setPassword(imp: Imported, srv: TestServer, address: string, password: string): Promise<void> {
  await withDirectory(srv, (dir) => dir.setPassword(address, password));
  void imp;
}

/** Adds a mailbox as `mailward user add` does. */
export async function addUser(srv: TestServer, address: string, password: string): Promise<void> {
  await withDirectory(srv, (dir) => dir.addUser(address, password));
}

/** EHLO, then MAIL FROM; resolves with the dialog ready for RCPT. */
export async function session(port: number, from: string, opts: { helo?: string; tls?: boolean; login?: readonly [string, string] } = {}): Promise<Dialog> {
  const c = await dial(port, opts.tls ? { tls: true } : {});
  await c.expect('220');
  await c.say(`EHLO ${opts.helo ?? 'client.sender.example'}`).expect('250');
  if (opts.login) {
    const token = Buffer.from(`\0${opts.login[0]}\0${opts.login[1]}`).toString('base64');
    await c.say(`AUTH PLAIN ${token}`).expect('235');
  }
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  return c;
}

/** The reply code to RCPT TO:<to> in a fresh transaction from `from`. */
export async function rcptCode(port: number, from: string, to: string, opts: Parameters<typeof session>[2] = {}): Promise<number> {
  const c = await session(port, from, opts);
  try {
    return (await c.say(`RCPT TO:<${to}>`).read()).code;
  } finally {
    c.close();
  }
}

export const ids = (r: ImportResult): string[] => r.plan.report.items.map((i) => i.id);
