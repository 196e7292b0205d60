// Commit latency during a password spray: one logged-in client sends messages one after another
// (fsync on, as shipped) while 50 connections try wrong passwords in parallel, non-stop. We time
// the end of DATA (the ".") to its 250 — the spool write, fsync of file and folder, rename — and
// the whole transaction (MAIL to that 250). Three runs in one process, same server config:
// - no spray (the floor);
// - spray, scrypt on the login hashing threads (auth.hashThreads; what ships);
// - spray, the same scrypt work with crypto.scrypt() on libuv's shared threadpool, where the
//   spool's fs calls also run (how logins were verified before; emulated by replacing the
//   pool's job runner in this process — the parameters, salt and key length are the pool's).
// Prints a markdown table; `--write` saves bench/results/auth-spray.md.
// Run: node --import tsx bench/auth-spray/run.ts [--messages N] [--spray N] [--seconds N] [--write]
import { scrypt } from 'node:crypto';
import { writeFileSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { HashPool, type DeriveRequest } from '../../src/core/password.ts';
import { dial, type Dialog } from '../../test/harness/dial.ts';
import { startServer } from '../../test/harness/server.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};
const MESSAGES = Number(arg('--messages') ?? 150);
const SPRAY = Number(arg('--spray') ?? 50);
// Per run, whichever comes first: MESSAGES sent or this many seconds of sending.
const SECONDS = Number(arg('--seconds') ?? 90);
const ROOT = path.resolve(import.meta.dirname, '../..');
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const plain = (user: string, pass: string): string => 'AUTH PLAIN ' + Buffer.from(`\0${user}\0${pass}`).toString('base64');
const ALICE = ['alice@example.org', 'alice password 1'] as const;

type Mode = 'none' | 'pool' | 'libuv';

interface Result {
  readonly mode: Mode;
  readonly commit: number[];
  readonly txn: number[];
  readonly logins: number;
  readonly seconds: number;
}

// eslint-disable-next-line @typescript-eslint/unbound-method -- only ever put back on the same prototype
const poolRun = HashPool.prototype.run;
function libuvRun(req: DeriveRequest): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    scrypt(req.password, req.salt, req.keylen, { N: req.N, r: req.r, p: req.p, maxmem: req.maxmem }, (err, key) =>
      err ? reject(err) : resolve(new Uint8Array(key.buffer, key.byteOffset, key.byteLength)),
    ),
  );
}

async function session(port: number): Promise<Dialog> {
  const c = await dial(port, { tls: true, timeoutMs: 120_000 });
  await c.expect('220');
  await c.say('EHLO bench').expect('250');
  return c;
}

async function runMode(mode: Mode): Promise<Result> {
  HashPool.prototype.run = mode === 'libuv' ? libuvRun : poolRun;
  const srv = await startServer(undefined, {
    users: [[...ALICE], ['bob@example.org', 'bob password 12']],
    // No lock, delay or refusal: every wrong login costs a full scrypt, as a spray from many
    // networks would.
    config: { log: { level: 'warn', format: 'json' }, limits: { maxConnectionsPerClient: SPRAY + 10 }, auth: { maxFailures: 1e9, maxNetworkFailures: 1e9, maxLoginFailures: 1e9, hashQueue: 10_000 } },
  });
  let stop = false;
  let logins = 0;
  const port = srv.port('submissions');
  const sprayers = mode === 'none' ? [] : Array.from({ length: SPRAY }, async (_, i) => {
    const c = await session(port);
    for (let n = 0; !stop; n++) {
      await c.say(plain(`user${i}-${n % 97}@example.org`, `guess ${n}`)).expect('535');
      logins++;
    }
    c.close();
  });
  try {
    const c = await session(port);
    await c.say(plain(...ALICE)).expect('235');
    // Let the spray fill the hashing threads (or libuv's pool) before timing.
    while (mode !== 'none' && logins < SPRAY) await new Promise((r) => setTimeout(r, 50));
    const commit: number[] = [];
    const txn: number[] = [];
    const l0 = logins;
    const t0 = performance.now();
    for (let i = 0; i < MESSAGES && performance.now() - t0 < SECONDS * 1000; i++) {
      const start = performance.now();
      await c.say(`MAIL FROM:<${ALICE[0]}>`).expect('250');
      await c.say('RCPT TO:<bob@example.org>').expect('250');
      await c.say('DATA').expect('354');
      c.send(`From: <${ALICE[0]}>\r\nSubject: bench ${i}\r\n\r\n${'x'.repeat(2000)}\r\n`);
      const dot = performance.now();
      c.send('.\r\n');
      await c.expect('250');
      const end = performance.now();
      commit.push(end - dot);
      txn.push(end - start);
    }
    const seconds = (performance.now() - t0) / 1000;
    const tried = logins - l0;
    c.close();
    return { mode, commit, txn, logins: tried, seconds };
  } finally {
    stop = true;
    await Promise.allSettled(sprayers);
    await srv.stop();
    rmSync(srv.dataDir, { recursive: true, force: true });
    HashPool.prototype.run = poolRun;
  }
}

const q = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const ms = (v: number): string => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`);
const LABEL: Record<Mode, string> = {
  none: 'no spray',
  pool: `${SPRAY} wrong logins in parallel, scrypt on the login hashing threads`,
  libuv: `${SPRAY} wrong logins in parallel, scrypt on libuv's shared pool`,
};

async function main(): Promise<void> {
  const results: Result[] = [];
  for (const mode of ['none', 'pool', 'libuv'] as const) {
    log(`${LABEL[mode]}: ${MESSAGES} messages…`);
    results.push(await runMode(mode));
  }
  const rows = results.map((r) => `| ${LABEL[r.mode]} | ${r.commit.length} | ${ms(q(r.commit, 50))} | ${ms(q(r.commit, 99))} | ${ms(Math.max(...r.commit))} | ${ms(q(r.txn, 50))} | ${ms(q(r.txn, 99))} | ${r.mode === 'none' ? '' : (r.logins / r.seconds).toFixed(1)} |`);
  const table = [
    '| while | messages | commit p50 | commit p99 | commit max | MAIL→250 p50 | MAIL→250 p99 | wrong logins/s |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  const text = `# Commit latency during a password spray (bench/auth-spray/run.ts)\n\n${cpus().length} CPUs, Node ${process.version}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}, ${new Date().toISOString().slice(0, 10)}, load average ${loadavg()[0]!.toFixed(1)} at the end. One server in this process (workers: 1), fsync on, SQLite store; "commit" is the "." ending DATA to its 250; scrypt N=2^15, r=8 per login.\n\n${table}\n`;
  process.stdout.write(text);
  if (process.argv.includes('--write')) writeFileSync(path.join(ROOT, 'bench', 'results', 'auth-spray.md'), text);
}

await main();
