// The part of `mailward doctor` that looks at the machine: key and certificate files, the DNS
// blocklists through the configured resolver, the spool's disk, the clock, and the permissions
// of files that hold secrets. Each probe has a short deadline; nothing here changes anything.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync, statfsSync, existsSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { BUILT_IN, type Config } from '../config/load.ts';
import { DkimKeyError, DkimKeys, type ConfiguredDkimKey } from '../delivery/dkim-sign.ts';
import type { Finding } from './finding.ts';
import { adminOf, placedChecks } from './audit-config.ts';

const q = (s: string): string => JSON.stringify(s);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A path from the config, relative to the config file's folder (as the server reads it). */
export function configPath(config: Config, p: string): string {
  const base = config.source === BUILT_IN ? process.cwd() : path.dirname(path.resolve(config.source));
  return path.resolve(base, p);
}

// ---- DKIM ----------------------------------------------------------------------------------

export function auditDkim(config: Config): Finding[] {
  const d: unknown = (config as { delivery?: unknown }).delivery;
  const dkim = isObj(d) && isObj(d.dkim) ? d.dkim : {};
  if (dkim.enabled === false) {
    return [
      {
        id: 'dkim-disabled',
        severity: 'info',
        setting: 'delivery.dkim.enabled',
        message: 'outgoing mail is not DKIM-signed: receivers that enforce DMARC may reject or junk it',
        fix: 'remove delivery.dkim.enabled (it defaults to true) and make a key with "mailward dkim keygen DOMAIN"',
      },
    ];
  }
  const configured: Record<string, ConfiguredDkimKey> = {};
  if (isObj(dkim.keys)) {
    for (const [dom, k] of Object.entries(dkim.keys)) {
      if (!isObj(k) || typeof k.selector !== 'string') continue;
      configured[dom] = { selector: k.selector, ...(typeof k.keyFile === 'string' ? { keyFile: configPath(config, k.keyFile) } : {}) };
    }
  }
  const dir = path.join(config.dataDir, 'dkim');
  let keys: DkimKeys;
  try {
    keys = DkimKeys.load({ dir, configured });
  } catch (err) {
    if (!(err instanceof DkimKeyError)) throw err;
    return [{ id: 'dkim-key-unusable', severity: 'error', setting: err.setting, message: err.problem, fix: err.fix }];
  }
  return config.domains
    .filter((domain) => domain !== 'localhost' && !keys.keyFor(domain))
    .map((domain) => ({
      id: 'dkim-key-missing',
      severity: 'warning' as const,
      setting: `delivery.dkim.keys.${domain}`,
      message: `no DKIM key for ${q(domain)} (none configured, and no ${domain}.<selector>.key in ${dir}): its mail leaves unsigned and fails DMARC where DKIM is required`,
      fix: `run "mailward dkim keygen ${domain}" and publish the TXT record it prints`,
    }));
}

// ---- DNS blocklists ------------------------------------------------------------------------

export interface DnsblZone {
  readonly index: number;
  readonly zone: string;
}

/** The zones of a DNS list check (dnsbl, uribl) when it is placed in a check list. */
function listZones(config: Config, check: 'dnsbl' | 'uribl'): Array<DnsblZone & { readonly testName?: string }> {
  if (!placedChecks(config).has(check)) return [];
  const o = config.checks[check];
  if (!isObj(o) || !Array.isArray(o.zones)) return [];
  return o.zones.flatMap((z: unknown, index) =>
    isObj(z) && typeof z.zone === 'string' ? [{ index, zone: z.zone.trim().toLowerCase().replace(/\.$/, ''), ...(typeof z.testName === 'string' ? { testName: z.testName.trim().toLowerCase().replace(/\.$/, '') } : {}) }] : [],
  );
}

/** The zones of the dnsbl check when it is placed in a check list. */
export function dnsblZones(config: Config): DnsblZone[] {
  return listZones(config, 'dnsbl');
}

const isListCode = (a: string): boolean => /^127\./.test(a) && !/^127\.255\.255\./.test(a);

interface ListProbe {
  readonly setting: string;
  readonly zone: string;
  /** The name asked: the list's test entry under its zone. */
  readonly name: string;
  /** How the test entry is named in a message: "test address 127.0.0.2", "test entry \"test\"". */
  readonly entry: string;
  /** The config key the zone can be removed from. */
  readonly list: string;
  /** Answers that count as the test entry being listed. */
  readonly listing: (a: string) => boolean;
}

/**
 * Asks each zone for its test entry through the configured DNS servers. A zone that is silent,
 * lists nothing or answers with an error code never lists anything: the check then protects
 * nothing while the operator thinks it does.
 */
async function probeLists(config: Config, timeoutMs: number, probes: readonly ListProbe[]): Promise<Finding[]> {
  if (probes.length === 0) return [];
  const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
  if (config.dns.servers.length > 0) resolver.setServers([...config.dns.servers]);
  const results = await Promise.all(
    probes.map(async ({ setting, zone, name, entry, list, listing }): Promise<Finding | undefined> => {
      let answers: string[];
      try {
        answers = await resolver.resolve4(name);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        if (code === 'ENOTFOUND' || code === 'ENODATA') {
          return {
            id: 'dnsbl-zone-no-test-entry',
            severity: 'warning',
            setting,
            message: `zone ${q(zone)} does not list its ${entry} (${name}: ${code}): the zone name is wrong or the list is gone, so it lists no one`,
            fix: `check the zone name in the list's documentation, or remove it from ${list}`,
          };
        }
        return {
          id: 'dnsbl-zone-silent',
          severity: 'warning',
          setting,
          message: `zone ${q(zone)} did not answer the test query ${name} within ${timeoutMs} ms (${code}): each lookup waits for the time-out and then counts as not listed`,
          fix: `check dns.servers and that this host may reach them, or remove the zone from ${list}`,
        };
      }
      if (answers.some(listing)) return undefined;
      const refused = answers.find((a) => /^127\.255\.255\./.test(a) || a === '127.0.0.1');
      if (refused) {
        return {
          id: 'dnsbl-zone-refused',
          severity: 'warning',
          setting,
          message: `zone ${q(zone)} answered the test query with ${refused}, an error code: the list refuses queries from your DNS resolver (public resolvers are often blocked), so it lists no one`,
          fix: 'use your own recursive resolver (e.g. unbound on this host) in dns.servers, or the list\'s registered data feed',
        };
      }
      return {
        id: 'dnsbl-zone-wrong-answer',
        severity: 'warning',
        setting,
        message: `zone ${q(zone)} answered the test query with ${answers.join(', ') || 'nothing'}, not a 127.0.0.x code: your resolver rewrites answers, so listings cannot be trusted`,
        fix: 'use a resolver that does not rewrite answers (e.g. unbound on this host) in dns.servers',
      };
    }),
  );
  return results.filter((f): f is Finding => f !== undefined);
}

/** DNS blocklists of client addresses: RFC 5782 §5, 127.0.0.2 must be listed. */
export async function auditDnsbl(config: Config, timeoutMs: number): Promise<Finding[]> {
  const probes = dnsblZones(config).map(({ index, zone }) => ({
    setting: `checks.dnsbl.zones[${index}]`,
    zone,
    name: `2.0.0.127.${zone}`,
    entry: 'test address 127.0.0.2',
    list: 'checks.dnsbl.zones',
    listing: isListCode,
  }));
  return probeLists(config, timeoutMs, probes);
}

/** URI blocklists: RFC 5782 §5, a domain list must list the name TEST (or the list's own test
 * domain, `testName`). URIBL answers 127.0.0.1 when it refuses a resolver. */
export async function auditUribl(config: Config, timeoutMs: number): Promise<Finding[]> {
  const probes = listZones(config, 'uribl').map(({ index, zone, testName = 'test' }) => ({
    setting: `checks.uribl.zones[${index}]`,
    zone,
    name: `${testName}.${zone}`,
    entry: `test entry ${q(testName)}`,
    list: 'checks.uribl.zones',
    listing: (a: string) => isListCode(a) && a !== '127.0.0.1',
  }));
  return probeLists(config, timeoutMs, probes);
}

// ---- Disk ----------------------------------------------------------------------------------

export interface DiskFigures {
  readonly bsize: number;
  readonly blocks: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
}

export interface DiskThresholds {
  /** Share of the disk in use at which a warning is given (default 0.85). */
  readonly warnAt: number;
  /** … and an error (default 0.95). */
  readonly errorAt: number;
}

export const DEFAULT_DISK: DiskThresholds = { warnAt: 0.85, errorAt: 0.95 };

const gb = (bytes: number): string => `${(bytes / 1e9).toFixed(1)} GB`;
const pct = (x: number): string => `${Math.floor(x * 100)}%`;

/** Findings for the file system holding `where`, from its statfs figures. */
export function diskFindings(where: string, s: DiskFigures, t: DiskThresholds = DEFAULT_DISK): Finding[] {
  const out: Finding[] = [];
  if (s.blocks > 0) {
    const used = 1 - s.bavail / s.blocks;
    if (used >= t.warnAt) {
      const error = used >= t.errorAt;
      out.push({
        id: error ? 'spool-disk-full' : 'spool-disk-filling',
        severity: error ? 'error' : 'warning',
        setting: 'dataDir',
        message: `the file system holding ${where} is ${pct(used)} full (${gb(s.bavail * s.bsize)} free of ${gb(s.blocks * s.bsize)}): once it is full every message is deferred (452 4.3.1)`,
        fix: 'free space, or move dataDir to a larger disk; look for a queue that grows (mailward queue list)',
      });
    }
  }
  if (s.files > 0) {
    const used = 1 - s.ffree / s.files;
    if (used >= t.warnAt) {
      const error = used >= t.errorAt;
      out.push({
        id: error ? 'spool-inodes-full' : 'spool-inodes-filling',
        severity: error ? 'error' : 'warning',
        setting: 'dataDir',
        message: `the file system holding ${where} has used ${pct(used)} of its inodes (${s.ffree} free): each queued message and mailbox message takes one, and without them no mail can be accepted`,
        fix: 'delete unwanted queued mail (mailward queue delete), or move dataDir to a file system with more inodes',
      });
    }
  }
  return out;
}

/** The nearest existing folder at or above `p` (the spool may not exist yet). */
function existingAncestor(p: string): string {
  let cur = path.resolve(p);
  while (!existsSync(cur)) {
    const up = path.dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  return cur;
}

export function auditDisk(config: Config, t: DiskThresholds = DEFAULT_DISK): Finding[] {
  const where = existingAncestor(config.paths.spool);
  try {
    return diskFindings(where, statfsSync(where), t);
  } catch (err) {
    return [{ id: 'spool-disk-unknown', severity: 'info', setting: 'dataDir', message: `cannot read the free space of ${where}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, fix: 'check the path and its permissions' }];
  }
}

// ---- Clock ---------------------------------------------------------------------------------

export interface TimeSync {
  /** true: synchronised; false: not; undefined: cannot tell. */
  readonly synchronized: boolean | undefined;
  /** Where the answer came from, or why there is none. */
  readonly detail: string;
}

/** Asks timedatectl (systemd) whether an NTP client has synchronised the clock. */
export function timedatectl(timeoutMs = 2000): Promise<TimeSync> {
  return new Promise((resolve) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) {
        const why = (stderr.trim().split('\n')[0] ?? '') || ((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed' : err.message);
        return resolve({ synchronized: undefined, detail: `timedatectl: ${why}` });
      }
      const v = stdout.trim();
      resolve({ synchronized: v === 'yes' ? true : v === 'no' ? false : undefined, detail: `timedatectl NTPSynchronized=${v}` });
    });
  });
}

/** The newest modification time among the spool's files (at most `limit` looked at). */
export function newestSpoolMtime(spool: string, limit = 5000): number | undefined {
  let newest: number | undefined;
  let seen = 0;
  const visit = (dir: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (seen >= limit) return;
      const p = path.join(dir, name);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (depth < 3) visit(p, depth + 1);
        continue;
      }
      seen++;
      if (newest === undefined || st.mtimeMs > newest) newest = st.mtimeMs;
    }
  };
  visit(spool, 0);
  return newest;
}

const SKEW_MS = 120_000;

export async function auditClock(config: Config, now: number, sync: () => Promise<TimeSync>): Promise<Finding[]> {
  const out: Finding[] = [];
  const newest = newestSpoolMtime(config.paths.spool);
  if (newest !== undefined && newest - now > SKEW_MS) {
    out.push({
      id: 'clock-behind',
      severity: 'warning',
      setting: 'clock',
      message: `the spool holds a file written at ${new Date(newest).toISOString()}, ${Math.round((newest - now) / 60_000)} minute(s) after this machine's clock (${new Date(now).toISOString()}): the clock was set back or is wrong`,
      fix: 'synchronise the clock (chrony, ntpd or systemd-timesyncd); greylisting, retries, DKIM and TLS all depend on it',
    });
  }
  const s = await sync();
  if (s.synchronized === false) {
    out.push({
      id: 'clock-not-synchronized',
      severity: 'warning',
      setting: 'clock',
      message: `the clock is not synchronised (${s.detail}); it reads ${new Date(now).toISOString()}`,
      fix: 'turn on time synchronisation: timedatectl set-ntp true, or install chrony',
    });
  } else if (s.synchronized === undefined) {
    out.push({
      id: 'clock-sync-unknown',
      severity: 'info',
      setting: 'clock',
      message: `cannot tell whether the clock is synchronised (${s.detail}); it reads ${new Date(now).toISOString()}`,
      fix: 'make sure an NTP client (chrony, ntpd or systemd-timesyncd) runs on this host',
    });
  }
  return out;
}

// ---- TLS certificate -----------------------------------------------------------------------

const DAY = 86_400_000;

/** Where the certificate comes from, for the findings' setting and fix. */
interface CertSource {
  readonly setting: 'tls.cert' | 'tls.acme';
  readonly renew: string;
}

const CERTBOT: CertSource = { setting: 'tls.cert', renew: 'renew it (e.g. certbot renew): Mailward reads the new files by itself (or on SIGHUP), no restart needed' };
const ACME: CertSource = { setting: 'tls.acme', renew: 'the server renews it itself: read the acme-failed lines in the log for why it cannot, and fix that (port 80 reachable from the internet, DNS names pointing here)' };

export function certFindings(cert: X509Certificate, file: string, hostname: string, now: number, source: CertSource = CERTBOT): Finding[] {
  const out: Finding[] = [];
  const until = Date.parse(cert.validTo);
  const setting = source.setting;
  if (until < now) {
    out.push({ id: 'tls-cert-expired', severity: 'error', setting, message: `the certificate ${file} expired on ${new Date(until).toISOString()}: clients and servers that verify refuse TLS, and submission clients cannot connect`, fix: source.renew });
  } else if (until - now < 14 * DAY) {
    out.push({ id: 'tls-cert-expiring', severity: 'warning', setting, message: `the certificate ${file} expires on ${new Date(until).toISOString()}, in ${Math.floor((until - now) / DAY)} day(s)`, fix: source.renew });
  }
  if (cert.checkHost(hostname) === undefined) {
    out.push({ id: 'tls-cert-name-mismatch', severity: 'warning', setting, message: `the certificate ${file} is not valid for the hostname ${q(hostname)} (subject: ${cert.subject.replace(/\n/g, ', ')})`, fix: setting === 'tls.acme' ? `add ${q(hostname)} to tls.acme.hostnames, or set hostname to a name listed there` : 'use a certificate that names this server, or set hostname to a name the certificate covers' });
  }
  return out;
}

export function auditCertificate(config: Config, now: number): Finding[] {
  const acme = config.tls.acme !== undefined && !config.tls.cert;
  const file = config.tls.cert ?? (acme ? path.join(config.paths.acme, 'cert.pem') : undefined);
  if (!file) return [];
  if (acme && !existsSync(file)) {
    return [{ id: 'tls-acme-pending', severity: 'info', setting: 'tls.acme', message: `no ACME certificate is stored yet (${file}): the server orders one when it starts and uses a self-signed certificate until then`, fix: 'start the server and look for the acme-issued (or acme-failed) line in its log' }];
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(file));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return [{ id: 'tls-cert-unreadable', severity: 'error', setting: acme ? 'tls.acme' : 'tls.cert', message: `cannot use ${file}: ${code ?? (err instanceof Error ? err.message : String(err))}`, fix: acme ? `remove ${file} and its key.pem beside it: the server then orders a new certificate` : 'point tls.cert at a readable PEM certificate chain' }];
  }
  return certFindings(cert, file, config.hostname, now, acme ? ACME : CERTBOT);
}

// ---- Files holding secrets or mail ---------------------------------------------------------

export function auditPermissions(config: Config): Finding[] {
  const out: Finding[] = [];
  try {
    const mode = statSync(config.dataDir).mode & 0o777;
    if (mode & 0o007) {
      out.push({ id: 'data-dir-open', severity: 'warning', setting: 'dataDir', message: `${config.dataDir} has mode ${mode.toString(8)}: every user of this machine can read the queue and the mailboxes`, fix: `chmod 750 ${config.dataDir}` });
    }
  } catch {
    // Not created yet: the server makes it with mode 700.
  }
  out.push(...auditFileModes(config));
  const admin = adminOf(config);
  if (admin?.tokenFile) {
    const file = configPath(config, admin.tokenFile);
    try {
      const mode = statSync(file).mode & 0o777;
      const token = readFileSync(file, 'utf8').trim();
      if (token.length < 16) {
        out.push({ id: 'admin-token-weak', severity: 'error', setting: 'admin.tokenFile', message: `${file} holds a token of ${token.length} characters: it can be guessed`, fix: `make a new one: head -c 32 /dev/urandom | base64 > ${file}` });
      }
      if (mode & 0o077) {
        out.push({ id: 'admin-token-readable', severity: 'warning', setting: 'admin.tokenFile', message: `${file} has mode ${mode.toString(8)}: other users of this machine can read the admin token`, fix: `chmod 600 ${file}` });
      }
    } catch (err) {
      out.push({ id: 'admin-token-missing', severity: 'error', setting: 'admin.tokenFile', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; the admin API will not start`, fix: `make one: head -c 32 /dev/urandom | base64 > ${file}; chmod 600 ${file}` });
    }
  }
  return out;
}

/** Lists a folder's entries whose names pass `keep`, as full paths; none when it cannot be read. */
function entries(dir: string, keep: (name: string) => boolean): string[] {
  try {
    return readdirSync(dir).filter(keep).map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

/**
 * Modes of what the server creates (docs/decisions/0020-unprivileged-systemd.md): private keys
 * 0600 (no group or other bits), SQLite files, the spool and the mailboxes never world-readable.
 * Each finding names the path, its mode and the chmod that fixes it.
 */
export function auditFileModes(config: Config): Finding[] {
  const out: Finding[] = [];
  const modeOf = (p: string): number | undefined => {
    try {
      return statSync(p).mode;
    } catch {
      return undefined;
    }
  };
  const octal = (m: number): string => (m & 0o777).toString(8).padStart(4, '0');
  const secrets = [
    ...entries(config.paths.tls, (n) => n.endsWith('key.pem') || n.endsWith('.key')),
    ...entries(path.join(config.dataDir, 'dkim'), (n) => n.endsWith('.key')),
    ...(config.tls.key ? [config.tls.key] : []),
  ];
  for (const file of secrets) {
    const m = modeOf(file);
    if (m === undefined || (m & 0o077) === 0) continue;
    out.push({ id: 'file-mode-secret', severity: 'error', setting: file === config.tls.key ? 'tls.key' : 'dataDir', message: `${file} has mode ${octal(m)}: other users of this machine can read a private key`, fix: `chmod 600 ${file}` });
  }
  const sqlite = [config.paths.directory, config.paths.store].flatMap((f) => [f, `${f}-wal`, `${f}-shm`]);
  for (const p of [...sqlite, config.paths.spool, config.paths.mail]) {
    const m = modeOf(p);
    if (m === undefined || (m & 0o007) === 0) continue;
    const dir = (m & 0o170000) === 0o040000;
    out.push({ id: 'file-mode-open', severity: 'warning', setting: p === config.paths.store ? 'store.sqlite.path' : 'dataDir', message: `${p} has mode ${octal(m)}: every user of this machine can read ${dir ? 'the mail in it' : 'the server\'s state'}`, fix: `chmod ${dir ? '750' : '640'} ${p}` });
  }
  return out;
}
