// Starts Mailward for the benchmarks as users run it — a separate `node dist/main.js serve`
// process with one YAML config — as an MX with the whole inbound pipeline of the example config
// on, its DNS (DNSBL, SPF, DMARC, sender domain) answered by a DNS server on loopback.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { stringify } from 'yaml';
import { startDns, type TestDns } from '../../test/harness/dns.ts';
import { ALL_CHECKS } from '../../src/checks/index.ts';
import { freePort, run, spawnTracked, stopChild, waitForSmtp } from './procs.ts';

export const DOMAIN = 'example.org';
export const RECIPIENT = `user@${DOMAIN}`;
export const SENDER = 'bench@sender.example';
export const CLIENT_HELO = 'client.sender.example';
const DNSBL_ZONE = 'bl.bench.example';

/** The zones the checks ask about: the sender's domain (MX, SPF, DMARC) and a blocklist that lists nobody. */
export function startBenchDns(): Promise<TestDns> {
  return startDns(undefined, {
    'sender.example': {
      MX: ['10 mx.sender.example.'],
      TXT: ['v=spf1 ip4:127.0.0.0/8 -all'],
      names: { mx: { A: ['127.0.0.1'] }, client: { A: ['127.0.0.1'] }, _dmarc: { TXT: ['v=DMARC1; p=reject'] } },
    },
    [DOMAIN]: { MX: [`10 mx.${DOMAIN}.`], names: { mx: { A: ['127.0.0.1'] } } },
    // 127.0.0.1 is not listed: the lookup answers NXDOMAIN, as for nearly every real client.
    [DNSBL_ZONE]: { names: { '2.0.0.127': { A: ['127.0.0.2'] } } },
  });
}

/**
 * Only what the Postfix instance checks: the relay gate (always on) and the recipient table —
 * the same work per message as the peer, to tell the cost of the core from that of the checks.
 */
export function recipientOnlyPipeline(): Record<string, string[]> {
  return { helo: [], mail: [], rcpt: ['recipient'], data: [] };
}

/** The stage lists of examples/mailward.yaml (the hardened Postfix setup, one check per restriction). */
export function fullPipeline(): Record<string, string[]> {
  const known = new Set(ALL_CHECKS.map((c) => c.name));
  const data = ['sender-login', 'permit-login', 'dkim-dmarc'];
  // Spam scoring joins the data stage as soon as the check is registered.
  if (known.has('spam')) data.push('spam');
  return {
    helo: ['helo'],
    mail: ['dnsbl', 'sender-access', 'sender-login', 'permit-login', 'sender-domain'],
    rcpt: ['recipient-access', 'recipient', 'permit-login', 'greylist', 'spf', 'recipient-domain'],
    data,
  };
}

export interface MailwardOptions {
  /** dist/main.js of a build, or src/main.ts (then run through tsx). */
  readonly main: string;
  readonly root: string;
  /** "127.0.0.1:PORT" of the DNS server that answers the checks' questions. */
  readonly dnsAddress: string;
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeArgs?: readonly string[];
  readonly maxConnections?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** full (default): the example config's checks; recipient-only: what the Postfix instance checks. */
  readonly pipeline?: 'full' | 'recipient-only';
  /** Top-level config keys merged over the benchmark's (for experiments, e.g. { queue: { fsync: false } }). */
  readonly extraConfig?: Record<string, unknown>;
}

export interface MailwardInstance {
  readonly name: 'mailward' | 'mailward-core';
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly dataDir: string;
  readonly pipeline: Record<string, string[]>;
  /** Messages in the test mailbox (new/ and cur/). */
  delivered(): number;
  stop(): Promise<void>;
}

const nodeArgsFor = (main: string): string[] => (main.endsWith('.ts') ? ['--import', 'tsx'] : []);

export async function startMailwardServer(opts: MailwardOptions): Promise<MailwardInstance> {
  const dataDir = path.join(opts.root, 'data');
  mkdirSync(dataDir, { recursive: true });
  const port = await freePort();
  const pipeline = opts.pipeline === 'recipient-only' ? recipientOnlyPipeline() : fullPipeline();
  const checks: Record<string, unknown> = {
    recipient: { systemAccountAction: 'reject' },
    'sender-login': { headerFrom: true, unauthenticatedOwnDomain: 'reject' },
    dnsbl: { zones: [{ zone: DNSBL_ZONE, codes: ['127.0.0.2-127.0.0.11'], action: 'reject' }] },
    'sender-access': { entries: { 'spammer.example': 'reject' } },
    'recipient-access': { entries: { [`noreply@${DOMAIN}`]: 'reject This address receives no mail' } },
    // The load generator's address is whitelisted, as a long-known peer would be; every other
    // check still runs for every message.
    greylist: { delay: '5m', maxAge: '35d', autoWhitelist: 5, whitelist: { clients: ['127.0.0.0/8'] } },
    spf: { fail: 'reject', softfail: 'score', softfailPoints: 2, temperror: 'defer' },
    'dkim-dmarc': { enforce: true },
    helo: { requireFqdn: true },
  };
  const config = {
    hostname: `mx.${DOMAIN}`,
    domains: [DOMAIN],
    dataDir,
    log: { level: 'warn', format: 'json' },
    listeners: { mx: { kind: 'mx', host: '127.0.0.1', port } },
    // One client address carries every session of the load generator.
    limits: { maxConnections: opts.maxConnections ?? 20_000, maxConnectionsPerClient: opts.maxConnections ?? 20_000 },
    pipeline,
    checks,
    dns: { servers: [opts.dnsAddress], timeout: '2s' },
    // Experiments on every Mailward of a run, e.g. BENCH_MAILWARD_CONFIG='{"store":{"backend":"redis",…}}'.
    ...(process.env.BENCH_MAILWARD_CONFIG ? (JSON.parse(process.env.BENCH_MAILWARD_CONFIG) as Record<string, unknown>) : {}),
    ...opts.extraConfig,
  };
  const configPath = path.join(opts.root, 'mailward.yaml');
  writeFileSync(configPath, stringify(config));
  const base = [...nodeArgsFor(opts.main), opts.main];
  // The package folder (dist/.. or src/..), where `--import tsx` and node_modules resolve.
  const cwd = path.resolve(path.dirname(opts.main), '..');
  await run(process.execPath, [...base, 'user', 'add', RECIPIENT, '--password-stdin', '--config', configPath], { cwd, input: 'bench-password-not-used\n' });

  const child = spawnTracked(process.execPath, [...(opts.nodeArgs ?? []), ...base, 'serve', '--config', configPath], {
    cwd,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...opts.env },
  });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`mailward serve exited early with ${String(code)}`))));
  exited.catch(() => undefined);
  await Promise.race([waitForSmtp(port, 60_000, 'Mailward'), exited]);
  const mailbox = path.join(dataDir, 'mail', DOMAIN, 'user', 'Maildir');
  return {
    name: opts.pipeline === 'recipient-only' ? 'mailward-core' : 'mailward',
    port,
    pid: child.pid!,
    child,
    dataDir,
    pipeline,
    delivered: () => ['new', 'cur'].reduce((n, sub) => n + (existsSync(path.join(mailbox, sub)) ? readdirSync(path.join(mailbox, sub)).length : 0), 0),
    stop: () => stopChild(child, 'SIGTERM', 30_000),
  };
}
