// Direct delivery to the recipient domain's mail exchangers: MX lookup through the configured DNS,
// then A/AAAA of each host by preference, falling back to the next address and host when one
// cannot be reached; a null MX (RFC 7505) bounces; no MX means the domain's own A/AAAA (RFC 5321
// §5.1). STARTTLS whenever offered (opportunistic, RFC 7435), unless the domain's MTA-STS policy
// (RFC 8461) asks for verified TLS to listed MX hosts, or DNSSEC-signed TLSA records (DANE, RFC
// 7672) ask for TLS authenticated by them — DANE first where both apply (RFC 8461 §2). A message
// with REQUIRETLS (RFC 8689) goes only over TLS one of them verifies, to a host offering
// REQUIRETLS; one with "TLS-Required: No" ignores policy failures (tls-required.ts). A
// concurrency limit per domain.
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import type { MxRecord } from 'node:dns';
import type { Logger } from '../observe/log.ts';
import { deliverInBatches, type BatchReplies, type DeliverableMessage, type DeliveryOutcome, type RecipientOutcome, type Transport } from './transport.ts';
import { KeyedLimit } from './limit.ts';
import { sendMessage, type SendResult, type SmtpClientOptions, type SmtpTarget } from './smtp-client.ts';
import { matchingPattern } from '../core/mta-sts.ts';
import { mailEvent } from '../observe/maillog.ts';
import type { CachedPolicy, PolicyLookup } from './tls-policy/mta-sts.ts';
import type { TlsOutcomeRecorder, TlsResult } from './tls-policy/tls-rpt.ts';
import type { DaneResolver, HostDane } from './tls-policy/dane.ts';
import { matchChain, peerChain } from './tls-policy/tlsa.ts';
import { tlsDemand } from './tls-required.ts';

/** What is asked of the DNS (node's dns/promises Resolver fits). */
export interface MxResolver {
  resolveMx(name: string): Promise<MxRecord[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

export interface MxHost {
  readonly name: string;
  readonly preference: number;
  /** Known at once for an address literal; looked up when the host's turn comes otherwise. */
  readonly addresses?: readonly string[];
}

export type MxPlan = { readonly kind: 'hosts'; readonly hosts: readonly MxHost[] } | { readonly kind: 'fail'; readonly outcome: DeliveryOutcome; readonly reply: string };

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return err instanceof Error ? err.message : String(err);
}
const isNoData = (code: string): boolean => code === 'ENODATA';
const isNxDomain = (code: string): boolean => code === 'ENOTFOUND';

/** Shuffles in place: RFC 5321 §5.1 asks to spread load over hosts of equal preference. */
function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/**
 * The hosts to try for `domain`, best first. `ownNames` are this server's names: when we are one
 * of the domain's MX hosts, only better (lower preference) hosts are tried (RFC 5321 §5.1).
 */
export async function planMx(dns: MxResolver, domain: string, ownNames: readonly string[] = []): Promise<MxPlan> {
  // RFC 5321 §4.1.3: an address literal names the host itself.
  const literal = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(domain);
  if (literal) {
    const ip = literal[1]!;
    if (!isIP(ip)) return { kind: 'fail', outcome: 'permanent', reply: `550 5.1.2 bad address literal ${domain}` };
    return { kind: 'hosts', hosts: [{ name: ip, preference: 0, addresses: [ip] }] };
  }
  const ascii = domainToASCII(domain.replace(/\.$/, ''));
  if (ascii === '') return { kind: 'fail', outcome: 'permanent', reply: `550 5.1.2 bad destination domain ${domain}` };
  let records: MxRecord[];
  try {
    records = await dns.resolveMx(ascii);
  } catch (err) {
    const code = codeOf(err);
    // RFC 5321 §5.1: no MX records: the domain itself is the only, implicit, MX.
    if (isNoData(code)) return { kind: 'hosts', hosts: [{ name: ascii, preference: 0 }] };
    // RFC 3463 X.4.4: unable to route; the domain does not exist.
    if (isNxDomain(code)) return { kind: 'fail', outcome: 'permanent', reply: `550 5.4.4 domain ${ascii} not found (no MX or address records)` };
    return { kind: 'fail', outcome: 'temporary', reply: `451 4.4.3 MX lookup for ${ascii} failed: ${code}` };
  }
  if (records.length === 0) return { kind: 'hosts', hosts: [{ name: ascii, preference: 0 }] };
  // RFC 7505 §3-4: one MX of preference 0 naming the root: the domain accepts no mail.
  if (records.some((r) => r.exchange === '' || r.exchange === '.')) {
    return { kind: 'fail', outcome: 'permanent', reply: `556 5.1.10 recipient domain ${ascii} has a null MX and accepts no mail` };
  }
  const byPref = new Map<number, MxRecord[]>();
  for (const r of records) byPref.set(r.priority, [...(byPref.get(r.priority) ?? []), r]);
  let hosts: MxHost[] = [...byPref.keys()].sort((a, b) => a - b).flatMap((p) => shuffle(byPref.get(p)!).map((r) => ({ name: r.exchange.toLowerCase().replace(/\.$/, ''), preference: p })));
  const own = new Set(ownNames.map((n) => n.toLowerCase()));
  const mine = hosts.find((h) => own.has(h.name));
  if (mine) {
    hosts = hosts.filter((h) => h.preference < mine.preference);
    if (hosts.length === 0) return { kind: 'fail', outcome: 'permanent', reply: `550 5.4.6 mail for ${ascii} loops back to myself` };
  }
  return { kind: 'hosts', hosts };
}

/** A host's addresses, IPv4 first; a string is why none could be found. */
export async function hostAddresses(dns: MxResolver, host: MxHost): Promise<readonly string[] | { readonly temporary: boolean; readonly reason: string }> {
  if (host.addresses) return host.addresses;
  const [v4, v6] = await Promise.allSettled([dns.resolve4(host.name), dns.resolve6(host.name)]);
  const out: string[] = [];
  let temporary = false;
  let reason = 'no A or AAAA records';
  for (const r of [v4, v6]) {
    if (r.status === 'fulfilled') out.push(...r.value);
    else {
      const code = codeOf(r.reason);
      if (!isNoData(code) && !isNxDomain(code)) {
        temporary = true;
        reason = `address lookup failed: ${code}`;
      } else if (isNxDomain(code)) reason = 'host not found';
    }
  }
  return out.length > 0 ? out : { temporary, reason };
}

export interface MxTransportOptions {
  readonly dns: MxResolver;
  /** The port MX hosts listen on: 25, except in tests where loopback sinks play them. */
  readonly port: number;
  readonly client: SmtpClientOptions;
  /** Deliveries to one domain at once. */
  readonly concurrencyPerDomain: number;
  /** This server's names, for the loop check. */
  readonly ownNames: readonly string[];
  readonly log: Logger;
  /** Recipient domains' MTA-STS policies (delivery.mtaSts.enabled). */
  readonly mtaSts?: { policyFor(domain: string): Promise<PolicyLookup>; readonly ca: readonly string[] };
  /** Counts each policy outcome for TLS-RPT. */
  readonly tlsReports?: TlsOutcomeRecorder;
  /** DNSSEC lookups for DANE (delivery.dane.enabled). */
  readonly dane?: Pick<DaneResolver, 'mx' | 'host'>;
}

type DaneHost = Extract<HostDane, { kind: 'dane' }>;

/** Addresses tried per message and domain before giving up until the next retry (Postfix: 5 hosts). */
const MAX_ADDRESSES = 10;

/** The domain of an address, as routing and MX lookup see it. */
export const domainOfAddress = (address: string): string => address.slice(address.lastIndexOf('@') + 1).toLowerCase();

export class MxTransport implements Transport {
  readonly #o: MxTransportOptions;
  readonly #limit: KeyedLimit;

  constructor(opts: MxTransportOptions) {
    this.#o = opts;
    this.#limit = new KeyedLimit(opts.concurrencyPerDomain);
  }

  async deliver(msg: DeliverableMessage, indexes: readonly number[]): Promise<RecipientOutcome[]> {
    const byDomain = new Map<string, number[]>();
    for (const i of indexes) {
      const r = msg.envelope.recipients[i];
      if (!r) continue;
      const d = domainOfAddress(r.mailbox ?? r.address);
      byDomain.set(d, [...(byDomain.get(d) ?? []), i]);
    }
    const results = await Promise.all([...byDomain].map(([domain, idx]) => this.#limit.run(domain, (keepUntil) => this.#deliverDomain(msg, domain, idx, keepUntil))));
    return results.flat();
  }

  async #deliverDomain(msg: DeliverableMessage, domain: string, indexes: readonly number[], keepUntil: (closing: Promise<unknown>) => void): Promise<RecipientOutcome[]> {
    const env = msg.envelope;
    const plan = await planMx(this.#o.dns, domain, this.#o.ownNames);
    if (plan.kind === 'fail') {
      this.#o.log.info({ event: 'mx-plan', queueId: env.id, domain, reply: plan.reply }, 'no MX host to try');
      return indexes.map((index) => ({ index, outcome: plan.outcome, reply: plan.reply }));
    }
    let dane = false;
    if (this.#o.dane && !domain.startsWith('[')) {
      const m = await this.#o.dane.mx(domain);
      // RFC 7672 §2.2.1: a failed or bogus MX lookup is no reason to deliver with less: defer.
      if (m.kind === 'failed') {
        this.#decide(env.id, domain, undefined, { result: 'dnssec-invalid', reason: m.reason, tlsa: [] });
        const reply = `451 4.7.5 DNSSEC lookup of the MX records of ${domain} failed`;
        return indexes.map((index) => ({ index, outcome: 'temporary' as const, reply }));
      }
      dane = m.kind === 'secure';
      if (!dane) this.#decide(env.id, domain, undefined, { result: 'skipped', reason: `the MX records of ${domain} are not DNSSEC-signed (or the resolver is not trusted)`, tlsa: [] });
    }
    const sts = this.#o.mtaSts ? await this.#o.mtaSts.policyFor(domain) : ({ kind: 'none' } as const);
    if (sts.kind === 'failed') this.#decide(env.id, domain, undefined, { result: sts.failure, reason: sts.reason });
    let policy = sts.kind === 'policy' && sts.policy.mode !== 'none' ? sts.policy : undefined;
    // The header is read only where it could change something: a policy that applies.
    const demand = env.requireTls === true || policy !== undefined || dane ? await tlsDemand(msg) : 'normal';
    if (demand === 'relaxed') {
      // RFC 8689 §5: the sender asks that policy failures not stop this message. STARTTLS is
      // still used whenever offered (opportunistic), only without MTA-STS or DANE verification.
      this.#requireTlsDecision(env.id, domain, 'tls-required-no', 'policy-ignored', `TLS-Required: No: ${[policy ? `MTA-STS (${policy.mode})` : '', dane ? 'DANE' : ''].filter(Boolean).join(' and ')} not enforced`);
      policy = undefined;
      dane = false;
    }
    return deliverInBatches(msg, indexes, (batch) => this.#tryHosts(msg, domain, plan.hosts, batch, keepUntil, policy, dane));
  }

  /** A REQUIRETLS (RFC 8689) decision: logged and counted as a TLS policy decision (not for TLS-RPT). */
  #requireTlsDecision(queueId: string, domain: string, policy: 'requiretls' | 'tls-required-no', result: string, reason: string, host?: string): void {
    mailEvent(this.#o.log, 'tls-policy', { queueId, domain, policy, mode: policy === 'requiretls' ? 'require' : 'relaxed', result, ...(host ? { host } : {}), reason });
  }

  /**
   * A transaction run in clear, as opportunistic TLS (RFC 7435) allows when the host offers no
   * STARTTLS (or refuses it): logged and counted (result "cleartext"), so that a rise shows — a
   * peer that dropped TLS, or a middlebox stripping the offer, which looks the same from here.
   * Info, not warn: many peers still have no TLS. Not for TLS-RPT: no policy failed.
   */
  #cleartext(queueId: string, domain: string, policy: CachedPolicy | undefined, host: string, address: string): void {
    const reason = `no TLS with ${host} (STARTTLS not offered, or refused): sent in clear as opportunistic TLS allows; a stripped STARTTLS looks the same`;
    mailEvent(this.#o.log, 'tls-policy', { queueId, domain, policy: policy ? 'sts' : 'no-policy-found', mode: policy?.mode ?? 'none', result: 'cleartext', host, address, reason });
  }

  /**
   * One TLS policy decision: logged, counted (metrics), and recorded for TLS-RPT. `tlsa` set: a
   * DANE decision (policy "tlsa", RFC 8460 §4.4), with the host's TLSA records.
   */
  #decide(queueId: string, domain: string, policy: CachedPolicy | undefined, d: { result: TlsResult | 'skipped'; host?: string; address?: string; reason?: string; tlsa?: readonly string[] }): void {
    const kind = d.tlsa ? { policy: 'tlsa', mode: 'dane' } : { policy: policy ? 'sts' : 'no-policy-found', mode: policy?.mode ?? 'none' };
    mailEvent(this.#o.log, 'tls-policy', { queueId, domain, ...kind, result: d.result, ...(d.host ? { host: d.host } : {}), ...(d.address ? { address: d.address } : {}), ...(d.reason ? { reason: d.reason } : {}) });
    if (d.result !== 'skipped') this.#o.tlsReports?.record({ domain, ...(policy ? { policy } : {}), ...(d.tlsa ? { tlsa: d.tlsa } : {}), result: d.result, ...(d.host ? { mxHost: d.host } : {}), ...(d.address ? { address: d.address } : {}) });
  }

  /**
   * A host with DNSSEC-signed TLSA records (RFC 7672 §2.2): STARTTLS is required and never given
   * up for clear text; with usable records the server must match them (§3), checked before MAIL.
   * A string is the reply when no address of the host would do.
   *
   * The domain's MTA-STS `policy`, if any, is not applied to such a host, either way (RFC 8461 §2:
   * DANE takes precedence; MTA-STS validation "MUST NOT" override a failing DANE validation). A
   * TLSA mismatch defers even when the certificate would pass MTA-STS; a TLSA match delivers even
   * when the policy does not list the host — the domain's signed DNS named this host and its key,
   * which is stronger evidence than the policy's MX patterns, and requiring both would let a stale
   * policy block mail that DANE authenticates. (A host with no usable record under an enforced
   * policy does not come here: MTA-STS authenticates it, see #tryHosts; docs/decisions/0043.)
   */
  async #daneHost(msg: DeliverableMessage, domain: string, host: MxHost, dane: DaneHost, batch: readonly string[], keepUntil: (closing: Promise<unknown>) => void, tried: { n: number }, policy: CachedPolicy | undefined): Promise<BatchReplies | string> {
    const env = msg.envelope;
    const precedence = policy ? `; MTA-STS policy (${policy.mode}) of ${domain} not applied: DANE takes precedence (RFC 8461 §2)` : '';
    const strict = env.requireTls === true;
    if (strict && dane.usable.length === 0) {
      // RFC 8689 §4.2.1: TLS without authentication is not enough for a REQUIRETLS message.
      this.#requireTlsDecision(env.id, domain, 'requiretls', 'no-verified-tls', 'no usable TLSA record authenticates the host', host.name);
      return `450 4.7.10 REQUIRETLS: MX host ${host.name} has no usable TLSA record to authenticate it`;
    }
    const addrs = await hostAddresses(this.#o.dns, host);
    if (!Array.isArray(addrs)) return `451 4.4.3 MX host ${host.name}: ${(addrs as { reason: string }).reason}`;
    const verifyPeer =
      dane.usable.length > 0
        ? (sock: Parameters<NonNullable<SmtpTarget['verifyPeer']>>[0]): string | undefined => {
            const m = matchChain(peerChain(sock), dane.usable, dane.names);
            return m.ok ? undefined : m.reason;
          }
        : undefined;
    let last = `451 4.4.1 MX host ${host.name} could not be reached`;
    // The host name is a CNAME whose expanded name holds the records (RFC 7672 §2.2.2): say so.
    const at = dane.base === host.name.toLowerCase() ? '' : ` (at _25._tcp.${dane.base}, its CNAME target)`;
    for (const address of addrs as readonly string[]) {
      if (tried.n++ >= MAX_ADDRESSES) break;
      // A REQUIRETLS message goes on only to a host that offers REQUIRETLS (RFC 8689 §4.2.1), and
      // carries it in MAIL FROM; the client checks the TLSA match (verifyPeer) before that.
      const res = await this.#send(msg, { address, port: this.#o.port, name: host.name, tls: 'starttls', verifyCertificate: false, ...(verifyPeer ? { verifyPeer } : {}), ...(strict ? { requireTlsExtension: true } : {}) }, batch, keepUntil);
      if (res.kind === 'unreachable') {
        if (res.requireTlsRefused) {
          // The TLSA records matched (a DANE success for TLS-RPT); only REQUIRETLS was missing.
          this.#decide(env.id, domain, undefined, { result: 'success', host: host.name, address, reason: `TLSA match${at}${precedence}`, tlsa: dane.records });
          this.#requireTlsDecision(env.id, domain, 'requiretls', 'not-offered', res.reply, host.name);
          last = res.reply;
        } else if (res.tlsFailure) {
          this.#decide(env.id, domain, undefined, { result: res.tlsFailure, host: host.name, address, reason: res.reply, tlsa: dane.records });
          last = `451 4.7.5 DANE: ${host.name} publishes TLSA records${at} and failed TLS authentication: ${res.tlsFailure} (${res.reply})`;
        } else last = res.reply;
        continue;
      }
      this.#decide(env.id, domain, undefined, { result: 'success', host: host.name, address, reason: `${dane.usable.length > 0 ? `TLSA match${at}` : 'no usable TLSA record: TLS without authentication (RFC 7672 §2.2)'}${precedence}`, tlsa: dane.records });
      if (strict) this.#requireTlsDecision(env.id, domain, 'requiretls', 'success', `DANE-verified TLS${at}`, host.name);
      return new Map(batch.map((a) => [a, { ...res.replies.get(a)!, remoteMta: host.name }]));
    }
    return last;
  }

  /**
   * Tries the hosts in order until one takes the transaction; every address gets a reply. Under an
   * MTA-STS policy (RFC 8461 §5) a host must match the policy's MX patterns and the session must
   * run over STARTTLS with a certificate valid for the host's name: in enforce mode a host that
   * fails is skipped; in testing mode the failure is only reported and delivery goes on (§5.2).
   */
  async #tryHosts(msg: DeliverableMessage, domain: string, hosts: readonly MxHost[], batch: readonly string[], keepUntil: (closing: Promise<unknown>) => void, policy?: CachedPolicy, dane = false): Promise<BatchReplies> {
    const env = msg.envelope;
    let last = `451 4.4.1 no MX host of ${domain} could be reached`;
    const tried = { n: 0 };
    const strict = env.requireTls === true;
    // A REQUIRETLS message applies any MTA-STS policy as enforced. RFC 8689 §4.2.1 asks that the
    // MX host be verified by an MTA-STS policy "as described in RFC 8461 §4.1" (the mx pattern
    // match) and that the certificate be valid for it, and that the message not be sent when that
    // fails; it makes no exception for mode. A policy's mode (RFC 8461 §5) only says what a
    // failure does to ordinary mail: report and deliver (testing) or not deliver (enforce). So a
    // testing policy verifies a host as well as an enforce one, and a failure under it stops a
    // REQUIRETLS message as under enforce. (mox is stricter: only enforce counts as verified.)
    const enforce = policy?.mode === 'enforce' || (strict && policy !== undefined);
    let daneDeferred = false;
    for (const host of hosts) {
      const hd = dane && this.#o.dane ? await this.#o.dane.host(host.name) : undefined;
      if (hd?.kind === 'failed') {
        // §2.1.1: a host whose TLSA (or address) lookup fails is not used; the next may be.
        this.#decide(env.id, domain, undefined, { result: 'dnssec-invalid', host: host.name, reason: hd.reason, tlsa: [] });
        last = `451 4.7.5 DNSSEC lookup for MX host ${host.name} failed`;
        daneDeferred = true;
        continue;
      }
      if (hd?.kind === 'dane' && hd.usable.length === 0 && enforce) {
        // Secure TLSA records, none usable (RFC 7672 §2.2: TLS required, unauthenticated): DANE
        // validates nothing here, so an enforced MTA-STS policy authenticates the host instead —
        // stronger, and no failing DANE check is overridden (RFC 8461 §2). Enforce mode requires
        // STARTTLS below, as DANE does; testing mode keeps the DANE path (it would allow clear text).
        this.#decide(env.id, domain, undefined, { result: 'skipped', host: host.name, reason: `no usable TLSA record: the MTA-STS policy (${policy.mode}) authenticates ${host.name}`, tlsa: [] });
      } else if (hd?.kind === 'dane') {
        // RFC 8461 §2: DANE applies instead of MTA-STS where the host has secure TLSA records.
        const r = await this.#daneHost(msg, domain, host, hd, batch, keepUntil, tried, policy);
        if (typeof r !== 'string') return r;
        last = r;
        daneDeferred = true;
        continue;
      }
      if (hd?.kind === 'none') this.#decide(env.id, domain, undefined, { result: 'skipped', host: host.name, reason: hd.reason, tlsa: [] });
      if (strict && !policy) {
        // Neither DANE nor MTA-STS can verify this host: a REQUIRETLS message never goes to it.
        this.#requireTlsDecision(env.id, domain, 'requiretls', 'no-verified-tls', 'no MTA-STS policy and no DNSSEC-signed TLSA records', host.name);
        last = `450 4.7.10 REQUIRETLS: ${domain} has no MTA-STS policy or DANE TLSA records to verify MX host ${host.name}`;
        continue;
      }
      let verify = policy !== undefined;
      if (policy && !matchingPattern(policy, host.name)) {
        this.#decide(env.id, domain, policy, { result: 'validation-failure', host: host.name, reason: `${host.name} matches no mx of the policy (${policy.mx.join(', ')})` });
        // RFC 8461 §4.1: an MX the policy does not list is not a candidate when enforced.
        if (enforce) {
          last = `451 4.7.5 MTA-STS policy of ${domain} does not list MX host ${host.name}`;
          continue;
        }
        verify = false;
      }
      const addrs = await hostAddresses(this.#o.dns, host);
      if (!Array.isArray(addrs)) {
        const why = addrs as { temporary: boolean; reason: string };
        last = `451 4.4.3 MX host ${host.name}: ${why.reason}`;
        continue;
      }
      for (const address of addrs as readonly string[]) {
        if (tried.n++ >= MAX_ADDRESSES) break;
        const plain: SmtpTarget = { address, port: this.#o.port, name: host.name, tls: 'opportunistic', verifyCertificate: false };
        let res: SendResult;
        if (verify) {
          res = await this.#send(msg, { ...plain, tls: 'starttls', verifyCertificate: true, ca: this.#o.mtaSts!.ca, ...(strict ? { requireTlsExtension: true } : {}) }, batch, keepUntil);
          if (res.kind === 'unreachable' && res.tlsFailure) {
            this.#decide(env.id, domain, policy, { result: res.tlsFailure, host: host.name, address, reason: res.reply });
            if (enforce) {
              last = `451 4.7.5 MTA-STS policy of ${domain} requires TLS with a valid certificate for ${host.name}: ${res.tlsFailure} (${res.reply})`;
              continue;
            }
            // Testing mode: reported above; the message goes as it would without a policy.
            res = await this.#send(msg, plain, batch, keepUntil);
          } else if (res.kind === 'sent') {
            this.#decide(env.id, domain, policy, { result: 'success', host: host.name, address });
            if (strict) this.#requireTlsDecision(env.id, domain, 'requiretls', 'success', `MTA-STS-verified TLS (${policy!.mode})`, host.name);
          } else if (res.requireTlsRefused) {
            // TLS was verified (an MTA-STS success), but the host cannot carry REQUIRETLS on.
            this.#decide(env.id, domain, policy, { result: 'success', host: host.name, address });
            this.#requireTlsDecision(env.id, domain, 'requiretls', 'not-offered', res.reply, host.name);
          }
        } else {
          res = await this.#send(msg, plain, batch, keepUntil);
        }
        if (res.kind === 'unreachable') {
          this.#o.log.info({ event: 'mx-unreachable', queueId: env.id, domain, host: host.name, address, reply: res.reply }, 'MX host not usable; trying the next');
          last = res.reply;
          continue;
        }
        this.#o.log.debug({ event: 'mx-session', queueId: env.id, domain, host: host.name, address, tls: res.tls }, 'MX transaction done');
        if (!res.tls) this.#cleartext(env.id, domain, policy, host.name, address);
        return new Map(batch.map((a) => [a, { ...res.replies.get(a)!, remoteMta: host.name }]));
      }
    }
    if (enforce) this.#o.log.warn({ event: 'mta-sts-deferred', queueId: env.id, domain, reply: last }, `no MX host of ${domain} satisfies its MTA-STS policy; deferred`);
    if (daneDeferred) this.#o.log.warn({ event: 'dane-deferred', queueId: env.id, domain, reply: last }, `no MX host of ${domain} satisfies its DANE TLSA records; deferred`);
    return new Map(batch.map((a) => [a, { outcome: 'temporary' as const, reply: last }]));
  }

  #send(msg: DeliverableMessage, target: SmtpTarget, batch: readonly string[], keepUntil: (closing: Promise<unknown>) => void): Promise<SendResult> {
    const env = msg.envelope;
    return sendMessage(target, this.#o.client, { from: env.mailFrom, to: batch, size: env.size, eightBit: env.body !== '7BIT' }, msg.body, keepUntil);
  }
}
