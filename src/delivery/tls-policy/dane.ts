// DANE for SMTP (RFC 7672): the DNSSEC state of a recipient domain's MX RRset, and per MX host of
// its address records and its TLSA RRset at _25._tcp.<host> (§2.2-2.3), asked of the configured
// resolver with the DO bit. The AD bit is believed only from a resolver on loopback or one the
// operator lists in delivery.dane.trustedResolvers: from anywhere else it could be set by anyone
// on the path (RFC 4035 §4.9.3, RFC 6698 §4.1), so every answer counts as insecure and DANE never
// applies. SERVFAIL is what a validating resolver answers for bogus data (RFC 4035 §5.5): it and
// time-outs are failures that defer, never a reason to fall back to less (RFC 7672 §2.1.1).
import { getServers } from 'node:dns';
import { isIP } from 'node:net';
import type { Logger } from '../../observe/log.ts';
import { mxExchange, parseServer, queryWire, readName, T_A, T_AAAA, T_CNAME, T_MX, T_RRSIG, T_TLSA, tlsaText, type WireAnswer } from './dns-wire.ts';
import { parseTlsa, usable, type Tlsa } from './tlsa.ts';

export type Lookup = { readonly kind: 'secure'; readonly answer: WireAnswer } | { readonly kind: 'insecure'; readonly answer: WireAnswer } | { readonly kind: 'failed'; readonly reason: string };

export type HostDane =
  /** DANE does not apply to this host: opportunistic TLS or MTA-STS as before. */
  | { readonly kind: 'none'; readonly reason: string }
  /** The lookups failed or were bogus: this host may not be used now (§2.1.1). */
  | { readonly kind: 'failed'; readonly reason: string }
  /**
   * Secure TLSA records at `_25._tcp.<base>`: STARTTLS required; `usable` empty means TLS without
   * authentication (§2.2). `names`: the reference identifiers a DANE-TA certificate must match,
   * the MX host name and, when its CNAME chain is secure, the expanded name (§3.2.2).
   */
  | { readonly kind: 'dane'; readonly base: string; readonly names: readonly string[]; readonly records: readonly string[]; readonly usable: readonly Tlsa[] };

/**
 * Why a trusted server's answer without the AD bit says nothing of the zone: it answered
 * authoritatively (an authoritative server does not validate), or it returned RRSIG records
 * with the data without validating them (a signed zone, a non-validating resolver; RFC 4035 §3.2.3).
 */
export type Unvalidated = 'authoritative' | 'signatures-not-validated';

/** A TLSA lookup: its DNSSEC state and records ("3 1 1 <hex>"), also when reached through a CNAME. */
export type TlsaLookup = { readonly kind: 'failed'; readonly reason: string } | { readonly kind: 'secure' | 'insecure'; readonly records: readonly string[]; readonly unvalidated?: Unvalidated };

/** The CNAME chain an answer took from `name` (RFC 1034 §3.6.2): the names in order, `name` first. */
function cnameChain(name: string, answer: WireAnswer): string[] {
  const chain = [name.toLowerCase().replace(/\.$/, '')];
  for (let hops = 0; hops < 16; hops++) {
    const cur = chain[chain.length - 1]!;
    const r = answer.answers.find((x) => x.type === T_CNAME && x.name === cur);
    if (!r) break;
    const next = readName(r.msg, r.offset).name;
    if (chain.includes(next)) break; // a loop: the resolver would have failed it
    chain.push(next);
  }
  return chain;
}

export interface DaneOptions {
  /** dns.servers: the first is asked (default the system's first). */
  readonly servers: readonly string[];
  /** Resolver addresses whose AD bit is believed besides loopback ones. */
  readonly trustedResolvers: readonly string[];
  readonly timeoutMs: number;
  readonly log: Logger;
}

/** 127.0.0.0/8 and ::1 (and ::ffff:127.x): a resolver on this machine, no network between. */
export function isLoopbackAddress(address: string): boolean {
  if (isIP(address) === 4) return address.startsWith('127.');
  const a = address.toLowerCase();
  return a === '::1' || /^::ffff:127\./.test(a);
}

const RCODE_NAMES: Readonly<Record<number, string>> = { 1: 'FORMERR', 2: 'SERVFAIL', 4: 'NOTIMP', 5: 'REFUSED' };

export class DaneResolver {
  readonly #o: DaneOptions;
  readonly server: string;
  /** Whether this resolver's AD bit is believed. */
  readonly trusted: boolean;

  constructor(o: DaneOptions) {
    this.#o = o;
    this.server = o.servers[0] ?? getServers()[0] ?? '127.0.0.1';
    const { address } = parseServer(this.server);
    this.trusted = isLoopbackAddress(address) || o.trustedResolvers.includes(address);
  }

  async #ask(name: string, type: number, what: string): Promise<Lookup> {
    let answer: WireAnswer;
    try {
      answer = await queryWire(this.server, name, type, this.#o.timeoutMs);
    } catch (err) {
      return { kind: 'failed', reason: `${what} lookup of ${name} failed: ${(err as Error).message}` };
    }
    // NOERROR and NXDOMAIN are answers; SERVFAIL (bogus, or no answer upstream) and the rest are not.
    if (answer.rcode !== 0 && answer.rcode !== 3) return { kind: 'failed', reason: `${what} lookup of ${name}: ${RCODE_NAMES[answer.rcode] ?? `RCODE ${answer.rcode}`} from ${this.server}` };
    if (!this.#warnedNotValidating) {
      const unvalidated = this.#unvalidated(answer);
      if (unvalidated) this.#warnNotValidating(name, unvalidated);
    }
    return { kind: answer.ad && this.trusted ? 'secure' : 'insecure', answer };
  }

  /** Why this answer of a trusted server lacks AD although the zone may be signed; undefined: it has AD, or the server is not believed. */
  #unvalidated(answer: WireAnswer): Unvalidated | undefined {
    if (answer.ad || !this.trusted) return undefined;
    return answer.aa ? 'authoritative' : answer.answers.some((r) => r.type === T_RRSIG) ? 'signatures-not-validated' : undefined;
  }

  #warnedNotValidating = false;

  /**
   * A resolver we would believe that answers authoritatively, or hands back signatures without
   * setting AD, is not validating: every domain then looks unsigned and DANE never applies, without
   * any failure to show for it. Said once per process, with the fix.
   */
  #warnNotValidating(name: string, unvalidated: Unvalidated): void {
    this.#warnedNotValidating = true;
    const why = unvalidated === 'authoritative' ? 'answered authoritatively (an authoritative server does not validate)' : 'returned DNSSEC signatures without the AD bit (it does not validate)';
    this.#o.log.warn(
      { event: 'dane-resolver-not-validating', server: this.server, name, setting: 'dns.servers' },
      `DANE: the resolver ${this.server} (dns.servers) ${why} for ${name}, so every domain looks unsigned and DANE never applies; point dns.servers at a validating resolver (e.g. unbound on 127.0.0.1)`,
    );
  }

  /** The DNSSEC state of the domain's MX RRset (or, with no MX, of its denial): §2.2.1. */
  async mx(domain: string): Promise<Lookup & { readonly hosts?: readonly string[] }> {
    const l = await this.#ask(domain, T_MX, 'MX');
    if (l.kind === 'failed') return l;
    return { ...l, hosts: l.answer.answers.filter((r) => r.type === T_MX).map(mxExchange) };
  }

  /** The TLSA RRset at `owner` (e.g. _25._tcp.mx.example.net), following a CNAME as the resolver does. */
  async tlsa(owner: string): Promise<TlsaLookup> {
    const t = await this.#ask(owner, T_TLSA, 'TLSA');
    if (t.kind === 'failed') return t;
    const records = t.answer.answers.filter((r) => r.type === T_TLSA && r.data.length >= 3).map(tlsaText);
    const unvalidated = this.#unvalidated(t.answer);
    return { kind: t.kind, records, ...(unvalidated ? { unvalidated } : {}) };
  }

  /**
   * The address records of an MX host and the CNAME chain they were reached by. `secure`: the
   * address records are DNSSEC-signed; `chainSecure`: every CNAME step is too (one AD bit covers
   * the whole answer, RFC 4035 §3.2.3, so an insecure answer with a chain asks the final name alone).
   * Public for `doctor --dns`, which checks the server's own host name as a sender would.
   */
  async addresses(name: string): Promise<{ kind: 'failed'; reason: string } | { kind: 'ok'; secure: boolean; chainSecure: boolean; chain: readonly string[] }> {
    let type = T_A;
    let l = await this.#ask(name, T_A, 'A');
    if (l.kind === 'failed') return l;
    if (!l.answer.answers.some((r) => r.type === T_A)) {
      type = T_AAAA;
      l = await this.#ask(name, T_AAAA, 'AAAA');
      if (l.kind === 'failed') return l;
    }
    const chain = cnameChain(name, l.answer);
    if (l.kind === 'secure' || chain.length === 1) return { kind: 'ok', secure: l.kind === 'secure', chainSecure: l.kind === 'secure', chain };
    const last = await this.#ask(chain[chain.length - 1]!, type, type === T_A ? 'A' : 'AAAA');
    if (last.kind === 'failed') return last;
    return { kind: 'ok', secure: last.kind === 'secure', chainSecure: false, chain };
  }

  /**
   * What DANE asks of one MX host: secure address records (§2.2.2: else DANE does not apply), then
   * the TLSA RRset on port 25 (§2.2.3) of the TLSA base domain. An MX host name that is a CNAME
   * (§2.2.2): with every step of the chain secure, the expanded name is tried first and then the
   * original name; with an insecure step, only the original name — the expanded one came from
   * data anyone on the path could have written.
   */
  async host(name: string): Promise<HostDane> {
    if (isIP(name)) return { kind: 'none', reason: 'an address literal has no TLSA records' };
    const a = await this.addresses(name);
    if (a.kind === 'failed') return a;
    if (!a.secure) return { kind: 'none', reason: `the address records of ${name} are not DNSSEC-signed` };
    const initial = a.chain[0]!;
    const expanded = a.chain[a.chain.length - 1]!;
    const bases = a.chainSecure && expanded !== initial ? [expanded, initial] : [initial];
    const names = a.chainSecure ? [...new Set([initial, expanded])] : [initial];
    const reasons: string[] = [];
    for (const base of bases) {
      const t = await this.tlsa(`_25._tcp.${base}`);
      if (t.kind === 'failed') return t;
      if (t.kind !== 'secure') reasons.push(`the TLSA lookup of _25._tcp.${base} is not DNSSEC-signed`);
      else if (t.records.length === 0) reasons.push(`_25._tcp.${base} has no TLSA records`);
      else return { kind: 'dane', base, names, records: t.records, usable: t.records.map(parseTlsa).filter((r): r is Tlsa => r !== undefined && usable(r)) };
    }
    return { kind: 'none', reason: reasons.join('; ') };
  }
}
