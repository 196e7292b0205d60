// Address facts the audit needs: which special ranges (loopback, private, carrier NAT,
// link-local) an operator's range touches, whether two ranges overlap, and this machine's own
// interface addresses — a forwarder or tunnel on this host connects from one of them.
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { inNetwork, ipText, parseIp, parseNetwork, type Network } from '../core/net.ts';

export type { Network };

const net = (text: string): Network => {
  const n = parseNetwork(text);
  if (!n) throw new Error(`bad built-in range ${text}`);
  return n;
};

/** Loopback: RFC 1122 §3.2.1.3 (127.0.0.0/8), RFC 4291 §2.5.3 (::1). */
export const LOOPBACK: readonly Network[] = [net('127.0.0.0/8'), net('::1/128')];

/** Ranges that are not the internet, with their name, for the operator. */
export const PRIVATE: ReadonlyArray<{ readonly net: Network; readonly name: string }> = [
  { net: net('10.0.0.0/8'), name: 'private (RFC 1918)' },
  { net: net('172.16.0.0/12'), name: 'private (RFC 1918)' },
  { net: net('192.168.0.0/16'), name: 'private (RFC 1918)' },
  { net: net('100.64.0.0/10'), name: 'carrier-grade NAT (RFC 6598)' },
  { net: net('169.254.0.0/16'), name: 'link-local (RFC 3927)' },
  { net: net('fc00::/7'), name: 'unique local (RFC 4193)' },
  { net: net('fe80::/10'), name: 'link-local (RFC 4291)' },
];

export const parseRange = (text: string): Network | undefined => parseNetwork(text);

/** True when the two ranges share at least one address. */
export function overlaps(a: Network, b: Network): boolean {
  if (a.family !== b.family) return false;
  const prefix = Math.min(a.prefix, b.prefix);
  return inNetwork(b, { ...a, prefix });
}

export const coversLoopback = (n: Network): boolean => LOOPBACK.some((l) => overlaps(n, l));

export function privateName(n: Network): string | undefined {
  return PRIVATE.find((p) => overlaps(n, p.net))?.name;
}

/** Number of addresses in a range, as text ("256", "65536", "2^64"). */
export function rangeSize(n: Network): string {
  const bits = (n.family === 4 ? 32 : 128) - n.prefix;
  return bits <= 32 ? String(2 ** bits) : `2^${bits}`;
}

/** True when the host is a loopback address ("127.0.0.1", "::1", "localhost"). */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const ip = parseIp(host);
  return ip !== undefined && LOOPBACK.some((l) => inNetwork(ip, l));
}

export function isPrivateHost(host: string): boolean {
  const ip = parseIp(host);
  return ip !== undefined && PRIVATE.some((p) => inNetwork(ip, p.net));
}

export interface OwnAddress {
  readonly address: string;
  readonly interface: string;
}

export type InterfaceMap = Readonly<Record<string, readonly Pick<NetworkInterfaceInfo, 'address' | 'internal'>[] | undefined>>;

/** This machine's addresses other than loopback, with the interface that holds each. */
export function ownAddresses(interfaces: InterfaceMap = networkInterfaces()): OwnAddress[] {
  const out: OwnAddress[] = [];
  for (const [name, list] of Object.entries(interfaces)) {
    for (const a of list ?? []) {
      const ip = parseIp(a.address);
      if (!ip || LOOPBACK.some((l) => inNetwork(ip, l))) continue;
      out.push({ address: ipText(ip), interface: name });
    }
  }
  return out;
}

/** The first own address inside `n`, if any. */
export function ownAddressIn(n: Network, own: readonly OwnAddress[]): OwnAddress | undefined {
  return own.find((o) => {
    const ip = parseIp(o.address);
    return ip !== undefined && inNetwork(ip, n);
  });
}
