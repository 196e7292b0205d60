// Other domains' MTA-STS policies (RFC 8461) for outbound delivery: the `_mta-sts` TXT lookup,
// the HTTPS fetch of https://mta-sts.<domain>/.well-known/mta-sts.txt (certificate verified for
// that name, no redirects, text/plain), and the cache in the store for max_age, refreshed when
// the TXT id changes. A failed lookup or fetch falls back to an unexpired cached policy (§5.1).
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Logger } from '../../observe/log.ts';
import type { Store } from '../../store/store.ts';
import { stsIdOf, type MtaStsMode, type MtaStsPolicy } from '../../core/mta-sts.ts';

/** What is asked of the DNS (node's dns/promises Resolver fits). */
export interface StsResolver {
  resolveTxt(name: string): Promise<string[][]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

/** RFC 8460 §4.3 result types a policy fetch can end in. */
export type StsFetchFailure = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid';

export interface CachedPolicy extends MtaStsPolicy {
  readonly id: string;
  /** When it was fetched (ms). */
  readonly fetchedAt: number;
  /** The policy text as served, for TLS-RPT's policy-string (RFC 8460 §4.4). */
  readonly text: string;
}

export type PolicyLookup =
  /** The domain publishes no policy (or only mode none): opportunistic TLS as before. */
  | { readonly kind: 'none' }
  | { readonly kind: 'policy'; readonly policy: CachedPolicy; readonly source: 'fetched' | 'cache' }
  /** A policy is announced but could not be had, and none is cached: treated as none (§5.1), reported. */
  | { readonly kind: 'failed'; readonly failure: StsFetchFailure; readonly reason: string };

export interface MtaStsOptions {
  readonly dns: StsResolver;
  readonly store: Store;
  readonly log: Logger;
  /** Extra trusted CA certificates (PEM), besides the system's. */
  readonly extraCa?: string;
  /** Policy host → "address:port" to fetch from instead of its A/AAAA (a test hook). */
  readonly addresses?: Readonly<Record<string, string>>;
  readonly fetchTimeoutMs: number;
  readonly clock?: () => number;
}

const MAX_POLICY_BYTES = 64 * 1024;
const REFRESH_MS = 86_400_000;
const KEY = (domain: string): string => `mta-sts:policy:${domain}`;

class FetchError extends Error {
  constructor(
    readonly failure: StsFetchFailure,
    message: string,
  ) {
    super(message);
  }
}

const codeOf = (err: unknown): string => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
};

/** The CA list for verified sessions: the system's roots plus the configured extra ones. */
export function trustedCas(extraCa?: string): string[] {
  return extraCa ? [...rootCertificates, extraCa] : [...rootCertificates];
}

export class MtaStsPolicies {
  readonly #o: MtaStsOptions;
  readonly #clock: () => number;
  readonly #ca: string[];
  /** One fetch per domain at once: concurrent deliveries share it. */
  readonly #inflight = new Map<string, Promise<PolicyLookup>>();

  constructor(o: MtaStsOptions) {
    this.#o = o;
    this.#clock = o.clock ?? Date.now;
    this.#ca = trustedCas(o.extraCa);
  }

  get ca(): readonly string[] {
    return this.#ca;
  }

  policyFor(domain: string): Promise<PolicyLookup> {
    const d = domain.toLowerCase().replace(/\.$/, '');
    let p = this.#inflight.get(d);
    if (!p) {
      p = this.#lookup(d).finally(() => this.#inflight.delete(d));
      this.#inflight.set(d, p);
    }
    return p;
  }

  async #cached(domain: string): Promise<CachedPolicy | undefined> {
    try {
      const raw = await this.#o.store.get(KEY(domain));
      if (!raw) return undefined;
      const c = JSON.parse(raw) as CachedPolicy;
      return c.fetchedAt + c.maxAge * 1000 > this.#clock() ? c : undefined;
    } catch {
      return undefined;
    }
  }

  async #lookup(domain: string): Promise<PolicyLookup> {
    const cached = await this.#cached(domain);
    let id: string | undefined;
    try {
      id = stsIdOf((await this.#o.dns.resolveTxt(`_mta-sts.${domain}`)).map((chunks) => chunks.join('')));
    } catch (err) {
      const code = codeOf(err);
      // RFC 8461 §5.1: a failed TXT lookup (not "no record") keeps an unexpired cached policy.
      if (code !== 'ENODATA' && code !== 'ENOTFOUND' && cached) return { kind: 'policy', policy: cached, source: 'cache' };
    }
    // §3.1/§5.1: no TXT record, but a cached policy that has not expired still applies.
    if (id === undefined) return cached ? { kind: 'policy', policy: cached, source: 'cache' } : { kind: 'none' };
    // Same id: the cached copy, unless a day old — then it is fetched again, so a policy in use
    // never runs out of max_age while its domain still publishes it (RFC 8461 §5.1, §10.2).
    if (cached && cached.id === id && this.#clock() - cached.fetchedAt < REFRESH_MS) return { kind: 'policy', policy: cached, source: 'cache' };
    let text: string;
    let policy: { mode: MtaStsMode; mx?: string[]; maxAge: number };
    try {
      text = await this.#fetch(domain);
      try {
        // mailauth's parser loads at the first policy fetch, not at start (docs/decisions/0033).
        const { parsePolicy } = await import('mailauth/lib/mta-sts.js');
        policy = parsePolicy(text) as typeof policy;
      } catch (err) {
        throw new FetchError('sts-policy-invalid', (err as Error).message);
      }
    } catch (err) {
      const f = err instanceof FetchError ? err : new FetchError('sts-policy-fetch-error', codeOf(err));
      this.#o.log.warn({ event: 'mta-sts-fetch-failed', domain, id, failure: f.failure, reason: f.message }, `MTA-STS policy of ${domain} could not be fetched`);
      if (cached) return { kind: 'policy', policy: cached, source: 'cache' };
      return { kind: 'failed', failure: f.failure, reason: f.message };
    }
    const fresh: CachedPolicy = { id, mode: policy.mode, mx: policy.mx ?? [], maxAge: policy.maxAge, fetchedAt: this.#clock(), text };
    try {
      await this.#o.store.set(KEY(domain), JSON.stringify(fresh), fresh.maxAge * 1000);
    } catch (err) {
      // The policy applies to this delivery anyway; the next one fetches again.
      this.#o.log.warn({ event: 'mta-sts-cache-failed', domain, err: String(err) }, 'cannot cache the MTA-STS policy');
    }
    this.#o.log.info({ event: 'mta-sts-policy', domain, id, mode: fresh.mode, mx: fresh.mx, maxAge: fresh.maxAge }, `MTA-STS policy of ${domain}: ${fresh.mode}`);
    return { kind: 'policy', policy: fresh, source: 'fetched' };
  }

  async #addresses(host: string): Promise<Array<{ address: string; port: number }>> {
    const o = this.#o.addresses?.[host];
    if (o) {
      const i = o.lastIndexOf(':');
      return [{ address: o.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(o.slice(i + 1)) }];
    }
    const [v4, v6] = await Promise.allSettled([this.#o.dns.resolve4(host), this.#o.dns.resolve6(host)]);
    const out = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (out.length === 0) throw new FetchError('sts-policy-fetch-error', `${host} has no address`);
    return out.map((address) => ({ address, port: 443 }));
  }

  /** RFC 8461 §3.3: HTTPS GET, the certificate valid for mta-sts.<domain>, 200 only, no redirects. */
  async #fetch(domain: string): Promise<string> {
    const host = `mta-sts.${domain}`;
    let last: unknown;
    for (const { address, port } of await this.#addresses(host)) {
      try {
        return await this.#get(host, address, port);
      } catch (err) {
        if (err instanceof FetchError && err.failure !== 'sts-policy-fetch-error') throw err;
        last = err;
      }
    }
    throw last instanceof Error ? last : new FetchError('sts-policy-fetch-error', String(last));
  }

  #get(host: string, address: string, port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: address, port, servername: host, path: '/.well-known/mta-sts.txt', method: 'GET', headers: { host }, ca: this.#ca, rejectUnauthorized: true, agent: false, timeout: this.#o.fetchTimeoutMs },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            // §3.3: redirects are not followed; anything but 200 is no policy.
            reject(new FetchError('sts-policy-fetch-error', `HTTP ${res.statusCode ?? '?'} from https://${host}/.well-known/mta-sts.txt`));
            return;
          }
          const type = String(res.headers['content-type'] ?? '');
          if (!/^text\/plain\b/i.test(type)) {
            res.resume();
            reject(new FetchError('sts-policy-invalid', `Content-Type ${JSON.stringify(type)}, not text/plain (RFC 8461 §3.2)`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_POLICY_BYTES) {
              req.destroy(new FetchError('sts-policy-invalid', `the policy is larger than ${MAX_POLICY_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new FetchError('sts-policy-fetch-error', `no answer from ${host} within ${this.#o.fetchTimeoutMs} ms`)));
      req.on('error', (err) => {
        if (err instanceof FetchError) return reject(err);
        const code = codeOf(err);
        // A certificate that is not valid for the policy host (RFC 8461 §3.3, RFC 8460 sts-webpki-invalid).
        if (/CERT|SELF_SIGNED|UNABLE_TO|ALTNAME|ERR_TLS/.test(code)) reject(new FetchError('sts-webpki-invalid', `${host}: ${err.message}`));
        else reject(new FetchError('sts-policy-fetch-error', `${host}: ${code}`));
      });
      req.end();
    });
  }
}

/** The text of a policy as `mode: x` lines, for logs and reports. */
export const policyLines = (text: string): string[] =>
  text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
