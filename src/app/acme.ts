// Certificates from an ACME CA (RFC 8555) for tls.acme.hostnames: one certificate for all the
// names, obtained at start when none is stored, renewed when renewAt of its lifetime has passed
// (retries with doubling back-off), swapped into the listeners without a restart, and an alert
// through the guard's channels when renewal still fails alertBefore expiry. The account key and
// the certificate live in dataDir/tls/acme/ (0600). docs/decisions/0027-acme.md.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
// acme-client (and its x509/forge/axios tree, ~190 ms of CPU to load) is imported by startAcme
// only: a server without tls.acme never loads it, and one with it opens its listeners first.
import type acmeClient from 'acme-client';
import type { AcmeSettings } from '../config/acme-schema.ts';
import type { Logger } from '../observe/log.ts';
import type { GuardAlert } from '../guard/alerts.ts';
import { CertificateError, logSwap, readPair, validatePair, type CertificateFacts, type CertificateHolder, type PemPair } from './certificates.ts';
import { startHttp01 } from './acme-http.ts';
import { startTlsAlpn01 } from './acme-alpn.ts';

const DAY = 86_400_000;
/** setTimeout's limit (2^31 - 1 ms, ~24.8 days): a later renewal is looked at again then. */
const MAX_TIMER_MS = 2_147_483_647;

export interface AcmeFiles {
  readonly dir: string;
  readonly accountKey: string;
  readonly cert: string;
  readonly key: string;
}

export const acmeFiles = (dir: string): AcmeFiles => {
  return { dir, accountKey: path.join(dir, 'account.key'), cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
};

/** Writes `data` with mode 0600 through a temporary file, so a crash never leaves half a key. */
function writePrivate(file: string, data: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/**
 * The stored certificate when it parses, matches its key and names every configured host;
 * undefined otherwise (a fresh one is then ordered).
 */
export function storedCertificate(files: AcmeFiles, hostnames: readonly string[]): ReturnType<typeof readPair> | undefined {
  if (!existsSync(files.cert) || !existsSync(files.key)) return undefined;
  try {
    const read = readPair(files.cert, files.key);
    return hostnames.every((h) => read.facts.names.includes(h)) ? read : undefined;
  } catch (err) {
    if (err instanceof CertificateError) return undefined;
    throw err;
  }
}

/** When a certificate is due for renewal: renewAt of its lifetime after notBefore (RFC 8555 leaves it to the client). */
export const renewalDue = (facts: Pick<CertificateFacts, 'notBefore' | 'notAfter'>, renewAt: number): number => facts.notBefore + Math.round(renewAt * (facts.notAfter - facts.notBefore));

/** The listener that answers the CA's challenge, whichever tls.acme.challenge is. */
interface Responder {
  readonly port: number;
  set(authz: acmeClient.Authorization, token: string, keyAuthorization: string): Promise<void>;
  remove(authz: acmeClient.Authorization, token: string): void;
  close(): Promise<void>;
}

async function startResponder(acme: typeof acmeClient, s: AcmeSettings, log: Logger): Promise<Responder> {
  const alpn = s.challenge === 'tls-alpn-01';
  const where = alpn ? s.alpn : s.http;
  const setting = alpn ? 'tls.acme.alpn' : 'tls.acme.http';
  try {
    if (alpn) {
      const l = await startTlsAlpn01({ ...where, log });
      log.info({ event: 'listening', listener: 'acme-tls-alpn-01', address: l.address, port: l.port }, `ACME tls-alpn-01 answers on ${l.address}:${l.port}`);
      return {
        port: l.port,
        async set(authz, _token, keyAuthorization) {
          const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
          l.set(authz.identifier.value, { cert: cert.toString(), key: key.toString() });
        },
        remove: (authz) => l.remove(authz.identifier.value),
        close: () => l.close(),
      };
    }
    const l = await startHttp01({ ...where, log });
    log.info({ event: 'listening', listener: 'acme-http-01', address: l.address, port: l.port }, `ACME http-01 answers on ${l.address}:${l.port}`);
    return { port: l.port, set: async (_authz, token, keyAuthorization) => l.set(token, keyAuthorization), remove: (_authz, token) => l.remove(token), close: () => l.close() };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const fix = err.code === 'EACCES' ? `port ${where.port} needs CAP_NET_BIND_SERVICE (the shipped systemd unit grants it) or root` : err.code === 'EADDRINUSE' ? `stop what listens there, or set ${setting}.port and forward port ${alpn ? 443 : 80} to it` : `check ${setting}.host and port`;
    throw new Error(`${setting}: cannot listen on ${where.host}:${where.port} for ACME ${s.challenge} (${err.code ?? err.message}); ${fix}`);
  }
}

export interface AcmeManagerOptions {
  readonly settings: AcmeSettings;
  readonly files: AcmeFiles;
  readonly holder: CertificateHolder;
  readonly log: Logger;
  readonly clock?: () => number;
  /** The guard's alert channels (log, webhook, postmaster mail). */
  readonly alert: (a: GuardAlert) => Promise<void>;
}

export interface AcmeManager {
  /** Resolves when the ACME timer and the http-01 listener are stopped. */
  stop(): Promise<void>;
  /** The port of the challenge listener (http-01 or tls-alpn-01). */
  readonly port: number;
}

/**
 * Starts the http-01 listener and the renewal timer. The holder holds the stored certificate
 * (or the self-signed one while none was obtained); the first attempt runs at once when the
 * stored certificate is missing or due.
 */
export async function startAcme(o: AcmeManagerOptions): Promise<AcmeManager> {
  const s = o.settings;
  const clock = o.clock ?? Date.now;
  const acme = (await import('acme-client')).default;
  const responder = await startResponder(acme, s, o.log);
  mkdirSync(o.files.dir, { recursive: true, mode: 0o700 });
  // No request to the CA may hang the renewal timer (or the stop) for good.
  acme.axios.defaults.timeout = 30_000;
  // acme-client retries a failed request 5 times (5 s, 10 s, ... apart: over a minute); our own
  // back-off (tls.acme.retry) is the schedule that counts, so one quick retry is enough here.
  const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings;
  if (settings) Object.assign(settings, { retryMaxAttempts: 1, retryDefaultDelay: 2 });
  if (s.directoryCa) {
    // A private CA's directory (or a test CA): trust its certificate for the ACME requests only.
    acme.axios.defaults.httpsAgent = new https.Agent({ ca: readFileSync(s.directoryCa) });
  }
  let ours = storedCertificate(o.files, s.hostnames)?.facts;
  let failures = 0;
  let lastAlert = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const accountKey = async (): Promise<string> => {
    if (existsSync(o.files.accountKey)) return readFileSync(o.files.accountKey, 'utf8');
    const key = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
    writePrivate(o.files.accountKey, key);
    return key;
  };

  const obtain = async (): Promise<void> => {
    const client = new acme.Client({ directoryUrl: s.directory, accountKey: await accountKey(), backoffAttempts: 10, backoffMin: 500, backoffMax: 10_000 });
    const [key, csr] = await acme.crypto.createCsr({ commonName: s.hostnames[0]!, altNames: [...s.hostnames] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
    const cert = await client.auto({
      csr,
      ...(s.email ? { email: s.email } : {}),
      termsOfServiceAgreed: true,
      challengePriority: [s.challenge],
      // The CA checks from outside; a self-check from here would ask our own resolver and may
      // not reach our public address (NAT). RFC 8555 §8.3: the CA's fetch is what counts.
      skipChallengeVerification: true,
      challengeCreateFn: (authz, challenge, keyAuthorization) => responder.set(authz, challenge.token, keyAuthorization),
      challengeRemoveFn: async (authz, challenge) => responder.remove(authz, challenge.token),
    });
    const pair: PemPair = { cert, key: key.toString() };
    // Validated before it is stored: a broken answer never replaces a good stored pair.
    const { context, facts } = validatePair(pair, { cert: 'the issued certificate', key: 'the new key' });
    writePrivate(o.files.key, pair.key);
    writePrivate(o.files.cert, pair.cert);
    ours = facts;
    if (o.holder.swap(pair, context, facts)) logSwap(o.log, facts, 'acme');
    o.log.info({ event: 'acme-issued', names: facts.names, fingerprint: facts.fingerprint, notAfter: new Date(facts.notAfter).toISOString(), renewAt: new Date(renewalDue(facts, s.renewAt)).toISOString() }, `ACME certificate issued for ${facts.names.join(', ')}; renewal from ${new Date(renewalDue(facts, s.renewAt)).toISOString()}`);
  };

  const schedule = (at: number): void => {
    if (stopped) return;
    const wait = Math.min(Math.max(at - clock(), 0), MAX_TIMER_MS);
    timer = setTimeout(() => {
      timer = undefined;
      running = attempt().finally(() => (running = undefined));
    }, wait);
    timer.unref();
  };

  const maybeAlert = async (err: string, next: number): Promise<void> => {
    const now = clock();
    const expiry = ours?.notAfter;
    // Only once the stored certificate is near its end (or there is none after three tries),
    // and at most once a day: a CA outage of a few hours early in the lifetime is no news.
    const urgent = expiry !== undefined ? now >= expiry - s.alertBefore : failures >= 3;
    if (!urgent || now - lastAlert < DAY) return;
    lastAlert = now;
    const left = expiry !== undefined ? `${Math.max(0, Math.floor((expiry - now) / DAY))} day(s) before it expires (${new Date(expiry).toISOString()})` : 'no certificate was obtained yet (a self-signed one is in use)';
    o.log.error({ event: 'acme-alert', names: s.hostnames, failures, expires: expiry !== undefined ? new Date(expiry).toISOString() : undefined, err }, `the TLS certificate for ${s.hostnames.join(', ')} could not be renewed ${failures} time(s), ${left}: ${err}`);
    await o.alert({
      state: 'notice',
      kind: 'certificate-renewal',
      name: s.hostnames.join(', '),
      reason: `ACME renewal failed ${failures} time(s); ${left}. Last error: ${err}`,
      figures: { failures, directory: s.directory, nextAttempt: new Date(next).toISOString(), ...(expiry !== undefined ? { expires: new Date(expiry).toISOString() } : {}), check: 'mailward doctor; the acme-failed lines in the log' },
      at: now,
    });
  };

  const attempt = async (): Promise<void> => {
    if (stopped) return;
    const due = ours ? renewalDue(ours, s.renewAt) : clock();
    if (clock() < due) return schedule(due);
    try {
      await obtain();
      failures = 0;
      // Never sooner than `retry` after a success: a CA issuing very short certificates (or a
      // tiny renewAt) cannot turn this into a loop.
      schedule(Math.max(renewalDue(ours!, s.renewAt), clock() + s.retry));
    } catch (err) {
      failures++;
      const text = err instanceof Error ? err.message : String(err);
      const backoff = Math.min(s.retry * 2 ** Math.min(failures - 1, 30), s.maxRetry);
      const next = clock() + backoff;
      o.log.error({ event: 'acme-failed', names: s.hostnames, directory: s.directory, failures, retryAt: new Date(next).toISOString(), err: text }, `ACME certificate for ${s.hostnames.join(', ')} not obtained (attempt ${failures}): ${text}; next attempt at ${new Date(next).toISOString()}`);
      await maybeAlert(text, next).catch(() => undefined);
      schedule(next);
    }
  };

  schedule(ours ? renewalDue(ours, s.renewAt) : clock());
  if (ours) o.log.info({ event: 'acme-stored', names: ours.names, fingerprint: ours.fingerprint, renewAt: new Date(renewalDue(ours, s.renewAt)).toISOString() }, `using the stored ACME certificate for ${ours.names.join(', ')}`);
  return {
    port: responder.port,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      // An order under way ends within the request time-out; do not hold the stop for longer.
      await Promise.race([running?.catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
      await responder.close();
    },
  };
}
