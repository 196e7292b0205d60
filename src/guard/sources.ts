// Who sends: the names the guard counts and trips breakers under — "login:alice@example.org",
// "sender:news@example.org", "client:192.0.2.7" (an IPv6 client is its /64, the unit one
// customer controls) — and the network of a client (IPv4 /24, IPv6 /64) for rate-limit rules.
import { ipText, networkOf, parseIp } from '../core/net.ts';
import type { SourceKind } from '../config/guard-schema.ts';

export type { SourceKind };

/** The name of the global breaker, which holds all outbound mail. */
export const GLOBAL = 'global';
/** The name of the installation-wide breaker (aggregate.ts), which stops non-exempt outbound mail. */
export const AGGREGATE = 'aggregate';

/** A client as the guard counts it: an IPv4 address, or the /64 of an IPv6 address. */
export function clientKey(address: string): string {
  const ip = parseIp(address);
  if (!ip) return address.toLowerCase();
  return ip.family === 4 ? ipText(ip) : networkOf(ip, 32, 64);
}

/** The client's network: IPv4 /24, IPv6 /64. */
export function networkKey(address: string): string {
  const ip = parseIp(address);
  return ip ? networkOf(ip, 24, 64) : address.toLowerCase();
}

export function source(kind: SourceKind, id: string): string {
  return `${kind}:${kind === 'client' ? clientKey(id) : id.toLowerCase()}`;
}

export interface SenderFacts {
  readonly login?: string;
  /** The envelope sender; '' or null for the null sender. */
  readonly sender: string | null;
  readonly client: string;
}

/** The sources of a message, in the order breakers are judged: login, sender, client. */
export function sourcesOf(f: SenderFacts, kinds: readonly SourceKind[] = ['login', 'sender', 'client']): string[] {
  const out: string[] = [];
  if (kinds.includes('login') && f.login) out.push(source('login', f.login));
  if (kinds.includes('sender') && f.sender) out.push(source('sender', f.sender));
  if (kinds.includes('client')) out.push(source('client', f.client));
  return out;
}

/** Checks the form of a breaker name given by an operator; returns the canonical name or undefined. */
export function parseBreakerName(name: string): string | undefined {
  const n = name.trim();
  if (n.toLowerCase() === GLOBAL) return GLOBAL;
  if (n.toLowerCase() === AGGREGATE) return AGGREGATE;
  const m = /^(login|sender|client):(.+)$/i.exec(n);
  if (!m) return undefined;
  return source(m[1]!.toLowerCase() as SourceKind, m[2]!);
}
