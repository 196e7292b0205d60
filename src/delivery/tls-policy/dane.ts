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
import { mxExchange, parseServer, queryWire, T_A, T_AAAA, T_MX, T_TLSA, tlsaText, type WireAnswer } from './dns-wire.ts';
import { parseTlsa, usable, type Tlsa } from './tlsa.ts';

export type Lookup = { readonly kind: 'secure'; readonly answer: WireAnswer } | { readonly kind: 'insecure'; readonly answer: WireAnswer } | { readonly kind: 'failed'; readonly reason: string };

export type HostDane =
  /** DANE does not apply to this host: opportunistic TLS or MTA-STS as before. */
  | { readonly kind: 'none'; readonly reason: string }
  /** The lookups failed or were bogus: this host may not be used now (§2.1.1). */
  | { readonly kind: 'failed'; readonly reason: string }
  /** Secure TLSA records: STARTTLS required; `usable` empty means TLS without authentication (§2.2). */
  | { readonly kind: 'dane'; readonly records: readonly string[]; readonly usable: readonly Tlsa[] };

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
    return { kind: answer.ad && this.trusted ? 'secure' : 'insecure', answer };
  }

  /** The DNSSEC state of the domain's MX RRset (or, with no MX, of its denial): §2.2.1. */
  async mx(domain: string): Promise<Lookup & { readonly hosts?: readonly string[] }> {
    const l = await this.#ask(domain, T_MX, 'MX');
    if (l.kind === 'failed') return l;
    return { ...l, hosts: l.answer.answers.filter((r) => r.type === T_MX).map(mxExchange) };
  }

  /**
   * What DANE asks of one MX host: secure address records (§2.2.2: else DANE does not apply), then
   * the TLSA RRset of its name on port 25 (§2.2.3). The TLSA base domain is the MX host name; an
   * MX pointing at a CNAME (forbidden by RFC 2181 §10.3) is not followed to its target's TLSA.
   */
  async host(name: string): Promise<HostDane> {
    if (isIP(name)) return { kind: 'none', reason: 'an address literal has no TLSA records' };
    const a = await this.#ask(name, T_A, 'A');
    if (a.kind === 'failed') return a;
    let addr: Lookup = a;
    if (!a.answer.answers.some((r) => r.type === T_A)) {
      addr = await this.#ask(name, T_AAAA, 'AAAA');
      if (addr.kind === 'failed') return addr;
    }
    if (addr.kind !== 'secure') return { kind: 'none', reason: `the address records of ${name} are not DNSSEC-signed` };
    const t = await this.#ask(`_25._tcp.${name}`, T_TLSA, 'TLSA');
    if (t.kind === 'failed') return t;
    const records = t.answer.answers.filter((r) => r.type === T_TLSA && r.data.length >= 3).map(tlsaText);
    if (t.kind !== 'secure') return { kind: 'none', reason: `the TLSA lookup of _25._tcp.${name} is not DNSSEC-signed` };
    if (records.length === 0) return { kind: 'none', reason: `_25._tcp.${name} has no TLSA records` };
    return { kind: 'dane', records, usable: records.map(parseTlsa).filter((r): r is Tlsa => r !== undefined && usable(r)) };
  }
}
