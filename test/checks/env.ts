// What the check tests share: a real CheckEnv (the test DNS server's resolver, a SQLite store
// and directory in a temp folder, an in-memory pino log, a clock the test moves), and builders
// for check contexts, mailboxes and the pipeline runner's placements.
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import type { z } from 'zod';
import { parseMailbox, type Mailbox } from '../../src/core/address.ts';
import { Directory } from '../../src/directory/directory.ts';
import type { CheckContext, CheckDefinition, CheckEnv, SessionFacts, StageHandlers, TransactionFacts } from '../../src/pipeline/check.ts';
import type { PlacedCheck } from '../../src/pipeline/runner.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import type { TestDns } from '../harness/dns.ts';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface Clock {
  now: number;
  (): number;
  advance(ms: number): void;
}

export function makeClock(start = Date.UTC(2026, 0, 5, 12, 0, 0)): Clock {
  const c = (() => c.now) as Clock;
  c.now = start;
  c.advance = (ms) => {
    c.now += ms;
  };
  return c;
}

export interface TestEnv {
  readonly env: CheckEnv;
  readonly clock: Clock;
  readonly store: SqliteStore;
  readonly dir: string;
  readonly logs: LogLine[];
}

export async function makeEnv(t: TestContext, o: { dns?: TestDns; domains?: string[]; hostname?: string; dnsTimeoutMs?: number } = {}): Promise<TestEnv> {
  const dir = await mkdtemp(join(tmpdir(), 'mailward-checks-'));
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') logs.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  const store = new SqliteStore({ path: join(dir, 'state.db') }, pino({ level: 'silent' }));
  const domains = o.domains ?? ['example.org'];
  const directory = Directory.open(join(dir, 'directory.db'), { domains });
  const clock = makeClock();
    const dns = o.dns ? o.dns.resolver(o.dnsTimeoutMs) : loopbackOnly();
  t.after(async () => {
    await store.close();
    directory.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { env: { log, clock, hostname: o.hostname ?? 'mx.example.org', domains, directory, dns, store }, clock, store, dir, logs };
}

// With no test DNS server, a resolver pointed at a closed loopback port: nothing leaves the host.
function loopbackOnly(): Resolver {
  const r = new Resolver({ timeout: 200, tries: 1 });
  r.setServers(['127.0.0.1:9']);
  return r;
}

export function build<O extends z.ZodType>(def: CheckDefinition<O>, options: z.input<O>, env: CheckEnv): StageHandlers {
  return def.create(def.options.parse(options), env);
}

export function mailbox(text: string): Mailbox {
  const r = parseMailbox(text);
  if (!r.ok) throw new Error(`bad test address ${text}: ${r.error}`);
  return r.mailbox;
}

let sessions = 0;

export function ctx(session: Partial<SessionFacts> = {}, tx?: { from?: string | null; rcpts?: string[] }, signal?: AbortSignal): CheckContext {
  const s: SessionFacts = { id: `s${++sessions}`, listener: 'mx', listenerKind: 'mx', clientAddress: '192.0.2.10', clientPort: 40000, tls: false, ...session };
  const t: TransactionFacts | undefined = tx
    ? { mailFrom: tx.from === null || tx.from === undefined ? null : mailbox(tx.from), recipients: (tx.rcpts ?? []).map(mailbox) }
    : undefined;
  return { session: s, ...(t ? { tx: t } : {}), signal: signal ?? new AbortController().signal };
}

export function place(name: string, handlers: StageHandlers, canPermit = false, timeoutMs = 2000): PlacedCheck {
  return { name, mode: 'enforce', timeoutMs, canPermit, handlers };
}
