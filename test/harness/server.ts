// Starts a real Mailward in this process on ephemeral loopback ports with its own data folder,
// and gives tests its ports, its log lines and its mailboxes. Stopped by the test's after hook.
import { mkdtempSync, rmSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { LOCAL_TRUST_ACK } from '../../src/config/schema.ts';
import { buildConfig, type Config } from '../../src/config/load.ts';
import { startMailward, type RunningServer } from '../../src/app/compose.ts';
import { openDirectory } from '../../src/app/accounts.ts';

export interface TestServer {
  readonly config: Config;
  readonly dataDir: string;
  readonly server: RunningServer;
  port(listener: string): number;
  /** Parsed JSON log lines so far. */
  readonly logs: Array<Record<string, unknown>>;
  /** Waits until a log line matching `pred` appears. */
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Messages in a mailbox (new/ and cur/), as text, oldest first; optional sub-folder like ".Junk". */
  mailbox(address: string): string[];
  /** Waits until `address` holds at least `count` messages. */
  waitForMail(address: string, count?: number, timeoutMs?: number): Promise<string[]>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Config keys merged over the test defaults. */
  readonly config?: Record<string, unknown>;
  readonly users?: ReadonlyArray<readonly [address: string, password: string]>;
  readonly aliases?: ReadonlyArray<readonly [address: string, targets: readonly string[]]>;
  /** Reuse a data folder (restart tests). */
  readonly dataDir?: string;
  /** With workers > 1: sessions stay in the primary until this resolves (StartOptions.holdAcceptors). */
  readonly holdAcceptors?: Promise<void>;
}

/**
 * How long waitForLog/waitForMail wait by default. Only a failing test ever reaches it, so it is
 * generous: on a loaded 2-core machine a delivery that takes 50 ms alone can take seconds.
 */
export const WAIT_LIMIT_MS = 60_000;

export const TEST_LISTENERS = {
  mx: { kind: 'mx', port: 0 },
  submission: { kind: 'submission', port: 0 },
  submissions: { kind: 'submissions', port: 0 },
};

export function testConfig(dataDir: string, extra: Record<string, unknown> = {}): Config {
  // Every test server listens on loopback, so a test that trusts a network trusts loopback: it
  // acknowledges that (relay.allowLocalTrust) unless it sets the key itself, even to undefined.
  const relay = extra.relay as Record<string, unknown> | undefined;
  if (relay?.trustedNetworks !== undefined && !('allowLocalTrust' in relay)) extra = { ...extra, relay: { ...relay, allowLocalTrust: LOCAL_TRUST_ACK } };
  return buildConfig({ hostname: 'mx.example.org', domains: ['example.org'], dataDir, workers: Number(process.env.MAILWARD_TEST_WORKERS ?? 1), listeners: TEST_LISTENERS, log: { level: 'debug', format: 'json' }, ...extra }, 'test config', dataDir);
}

export function maildirPath(root: string, address: string): string {
  const at = address.lastIndexOf('@');
  return path.join(root, address.slice(at + 1).toLowerCase(), address.slice(0, at).toLowerCase(), 'Maildir');
}

export function readMaildir(dir: string): string[] {
  const files: Array<[string, string]> = [];
  for (const sub of ['new', 'cur']) {
    const d = path.join(dir, sub);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) files.push([f, path.join(d, f)]);
  }
  files.sort((a, b) => a[0].localeCompare(b[0]));
  return files.map(([, p]) => readFileSync(p, 'utf8'));
}

export async function startServer(t: TestContext | undefined, opts: StartOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), 'mailward-test-'));
  const config = testConfig(dataDir, opts.config);
  const logs: Array<Record<string, unknown>> = [];
  let waiters: Array<() => void> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        try {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          logs.push({ unparsed: line });
        }
      }
      const w = waiters;
      waiters = [];
      w.forEach((f) => f());
      cb();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  if (opts.users || opts.aliases) {
    const dir = openDirectory(config);
    try {
      for (const [a, p] of opts.users ?? []) await dir.addUser(a, p);
      for (const [a, targets] of opts.aliases ?? []) dir.addAlias(a, [...targets]);
    } finally {
      dir.close();
    }
  }
  const server = await startMailward(config, { log, ...(opts.holdAcceptors ? { holdAcceptors: opts.holdAcceptors } : {}) });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await server.stop();
  };
  t?.after(async () => {
    await stop();
    if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
  });
  const waitFor = async <T>(get: () => T | undefined, timeoutMs: number, what: string): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 25);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  const mailbox = (address: string): string[] => readMaildir(maildirPath(config.paths.mail, address));
  return {
    config,
    dataDir,
    server,
    logs,
    port: (name) => server.port(name),
    waitForLog: (pred, timeoutMs = WAIT_LIMIT_MS) => waitFor(() => logs.find(pred), timeoutMs, 'a log line'),
    mailbox,
    waitForMail: (address, count = 1, timeoutMs = WAIT_LIMIT_MS) =>
      waitFor(() => {
        const m = mailbox(address);
        return m.length >= count ? m : undefined;
      }, timeoutMs, `${count} message(s) in ${address}`),
    stop,
  };
}
