// IP address helpers shared by the checks, the guard and doctor: parse addresses and CIDR ranges into bytes, match an
// address against many ranges (longest prefix wins), name a client's network (/24, /64) and
// build the reverse-order query names DNS lists use. Pure, no I/O.
import { isIPv4, isIPv6 } from 'node:net';

export interface Ip {
  readonly family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Uint8Array;
}

export interface Network extends Ip {
  readonly prefix: number;
  /** As the operator wrote it, for logs. */
  readonly text: string;
}

function v4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

function v6Bytes(text: string): Uint8Array {
  let s = text;
  const out = new Uint8Array(16);
  // An embedded dotted quad takes the last 32 bits (RFC 4291 §2.2, form 3).
  const dot = s.lastIndexOf(':');
  let tail: Uint8Array | undefined;
  if (s.includes('.')) {
    tail = v4Bytes(s.slice(dot + 1));
    s = `${s.slice(0, dot + 1)}0:0`;
  }
  const [head = '', rest] = s.split('::');
  const h = head ? head.split(':') : [];
  const r = rest ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  if (tail) out.set(tail, 12);
  return out;
}

/** Parses an address; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is given as the IPv4 address it carries. */
export function parseIp(text: string): Ip | undefined {
  const t = text.trim().replace(/^\[(?:ipv6:)?(.*)\]$/i, '$1');
  if (isIPv4(t)) return { family: 4, bytes: v4Bytes(t) };
  if (!isIPv6(t) || t.includes('%')) return undefined;
  const b = v6Bytes(t);
  // RFC 4291 §2.5.5.2: a dual-stack socket shows an IPv4 client as ::ffff:a.b.c.d.
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return { family: 4, bytes: b.slice(12) };
  return { family: 6, bytes: b };
}

/** Parses "192.0.2.0/24", "2001:db8::/32" or a single address (a /32 or /128). */
export function parseNetwork(text: string): Network | undefined {
  const [addr = '', bits, extra] = text.trim().split('/');
  if (extra !== undefined) return undefined;
  const ip = parseIp(addr);
  if (!ip) return undefined;
  const max = ip.family === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  // An IPv4-mapped range written in IPv6 form keeps its meaning for IPv4 clients.
  const shifted = ip.family === 4 && addr.includes(':') ? prefix - 96 : prefix;
  if (shifted < 0) return undefined;
  return { ...ip, prefix: shifted, text: text.trim() };
}

export function inNetwork(ip: Ip, net: Network): boolean {
  if (ip.family !== net.family) return false;
  const full = Math.floor(net.prefix / 8);
  for (let i = 0; i < full; i++) if (ip.bytes[i] !== net.bytes[i]) return false;
  const rest = net.prefix % 8;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((ip.bytes[full] ?? 0) & mask) === ((net.bytes[full] ?? 0) & mask);
}

/** Ranges with a value each; `match` gives the value of the narrowest range holding the address. */
export class NetworkTable<V> {
  private readonly entries: Array<{ net: Network; value: V }> = [];

  add(net: Network, value: V): void {
    this.entries.push({ net, value });
    this.entries.sort((a, b) => b.net.prefix - a.net.prefix);
  }

  match(ip: Ip): { net: Network; value: V } | undefined {
    return this.entries.find((e) => inNetwork(ip, e.net));
  }

  get size(): number {
    return this.entries.length;
  }
}

/** Canonical text of an address (dotted quad, or RFC 5952 IPv6). */
export function ipText(ip: Ip): string {
  if (ip.family === 4) return Array.from(ip.bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((ip.bytes[i] ?? 0) << 8) | (ip.bytes[i + 1] ?? 0));
  // RFC 5952 §4.2.3: shorten the longest run of two or more zero groups, the first on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The client's network as text, e.g. "192.0.2.0/24" or "2001:db8:1:2::/64". */
export function networkOf(ip: Ip, v4Prefix: number, v6Prefix: number): string {
  const prefix = ip.family === 4 ? v4Prefix : v6Prefix;
  const bytes = Uint8Array.from(ip.bytes);
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    const i = bit >> 3;
    bytes[i] = (bytes[i] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return `${ipText({ family: ip.family, bytes })}/${prefix}`;
}

/**
 * The reversed query name of an address under a DNS list zone: "2.0.0.127.zone" for IPv4
 * (RFC 5782 §2.1) and 32 reversed nibbles for IPv6 (RFC 5782 §2.4).
 */
export function reverseName(ip: Ip, zone: string): string {
  if (ip.family === 4) return `${Array.from(ip.bytes).reverse().join('.')}.${zone}`;
  const nibbles: string[] = [];
  for (const b of ip.bytes) nibbles.push((b >> 4).toString(16), (b & 0xf).toString(16));
  return `${nibbles.reverse().join('.')}.${zone}`;
}

/** An IPv4 address as a 32-bit unsigned number (for return-code ranges). */
export function ipv4Number(ip: Ip): number {
  return ip.bytes.reduce((n, b) => n * 256 + b, 0);
}
