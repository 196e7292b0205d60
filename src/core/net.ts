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
  if (isMapped(b)) return { family: 4, bytes: b.slice(12) };
  return { family: 6, bytes: b };
}

const isMapped = (b: Uint8Array): boolean => b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;

/** An address or range the one network parser refused: what is wrong, and how to write it. */
export interface NetworkProblem {
  readonly problem: string;
  readonly fix: string;
}

export const isNetworkProblem = (r: Network | NetworkProblem): r is NetworkProblem => 'problem' in r;

const GENERIC_FIX = 'write an address such as 10.0.0.5 or a range such as 10.0.0.0/24 or 2001:db8::/64';
// A range in IPv4-mapped form (RFC 4291 §2.5.5.2) and the deprecated IPv4-compatible block (§2.5.5.1).
const MAPPED_BLOCK: Network = { family: 6, bytes: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]), prefix: 96, text: '::ffff:0:0/96' };
const COMPAT_BLOCK: Network = { family: 6, bytes: new Uint8Array(16), prefix: 96, text: '::/96' };

function maskTo(ip: Ip, prefix: number): Uint8Array {
  const bytes = Uint8Array.from(ip.bytes);
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) & ~(0x80 >> (bit & 7));
  return bytes;
}

const rangesMeet = (a: Network, b: Network): boolean => a.family === b.family && inNetwork(b, { ...a, prefix: Math.min(a.prefix, b.prefix) });

/**
 * The one parser of every setting that holds client addresses or ranges (relay networks, PROXY
 * senders, check exceptions and whitelists, policyd clients). It gives one canonical meaning or
 * refuses, so no two parts of the server can read the same text differently:
 * - IPv4 must be a full dotted quad in decimal without leading zeros: inet_aton reads "127.1" as
 *   127.0.0.1 and "0127.0.0.1" as octal (87.0.0.1), other parsers refuse or read them otherwise;
 * - an IPv4-mapped range (::ffff:a.b.c.d/n with n >= 96, in any IPv6 spelling) is the IPv4 range
 *   a.b.c.d/(n-96): client addresses are folded the same way before matching (parseIp), so a
 *   mapped range can never match as IPv6 nor slip past a rule written for IPv4;
 * - an IPv6 range wider than /96 that holds the mapped block, or any range in the deprecated
 *   IPv4-compatible block ::/96 (except ::1), is refused: it would mean IPv4 clients in a form the
 *   IPv4 rules do not see;
 * - zone ids (fe80::1%eth0) are refused: a client address never carries one;
 * - brackets are allowed around the address, Postfix-style ("[::1]/128", "[2001:db8::]/32");
 * - host bits below the prefix are cleared (10.0.0.5/8 is 10.0.0.0/8).
 * The `text` of the result is canonical ("127.0.0.0/8", "2001:db8::/32").
 */
export function readNetwork(input: string): Network | NetworkProblem {
  const text = input.trim();
  const shown = JSON.stringify(input);
  const m = /^(?:\[(?:ipv6:)?([^\]]*)\]|([^/[\]]*))(?:\/(.*))?$/i.exec(text);
  const addr = m ? (m[1] ?? m[2] ?? '') : '';
  const bits = m?.[3];
  if (!m || addr === '') return { problem: `${shown} is not an IP address or CIDR range`, fix: GENERIC_FIX };
  const zone = addr.indexOf('%');
  if (zone >= 0) {
    return { problem: `${shown} carries a zone id (${addr.slice(zone)}); client addresses are matched without one`, fix: `write the address without it, e.g. ${addr.slice(0, zone)}` };
  }
  let ip: Ip;
  if (isIPv4(addr)) ip = { family: 4, bytes: v4Bytes(addr) };
  else if (isIPv6(addr)) ip = { family: 6, bytes: v6Bytes(addr) };
  else if (/^[0-9a-fx.]+$/i.test(addr) && /[0-9]/.test(addr) && !/^[a-f]/i.test(addr)) {
    return {
      problem: `${shown} is not a full dotted-quad IPv4 address: short forms (127.1), leading zeros (0127.0.0.1, octal to inet_aton), hex or single numbers mean different addresses to different programs`,
      fix: 'write all four parts in decimal without leading zeros, e.g. 127.0.0.1 or 10.0.0.0/8',
    };
  } else if (/[.:]/.test(addr) && /^[0-9a-f.:]+$/i.test(addr)) {
    return { problem: `${shown} is not a valid IPv6 address (an embedded IPv4 part must be a full dotted quad without leading zeros)`, fix: 'write e.g. 2001:db8::5, or an IPv4 address in IPv4 form such as 192.0.2.5' };
  } else return { problem: `${shown} is not an IP address or CIDR range`, fix: GENERIC_FIX };
  const max = ip.family === 4 ? 32 : 128;
  if (bits !== undefined && !/^(?:0|[1-9][0-9]{0,2})$/.test(bits)) {
    return { problem: `${shown} has the prefix length ${JSON.stringify(bits)}`, fix: `write the prefix length as a decimal number from 0 to ${max} without leading zeros, e.g. /24` };
  }
  let prefix = bits === undefined ? max : Number(bits);
  if (prefix > max) return { problem: `${shown} has a prefix longer than ${max} bits`, fix: `use a prefix length from 0 to ${max}` };
  if (ip.family === 6) {
    const range: Network = { ...ip, prefix, text };
    if (prefix >= 96 && isMapped(ip.bytes)) {
      ip = { family: 4, bytes: ip.bytes.slice(12) };
      prefix -= 96;
    } else if (rangesMeet(range, MAPPED_BLOCK)) {
      return { problem: `${shown} holds the IPv4-mapped block ::ffff:0:0/96, so it would take in IPv4 clients (all of them) in a form the IPv4 rules do not see`, fix: 'list IPv4 clients as IPv4 ranges (e.g. 192.0.2.0/24) and keep IPv6 ranges outside ::ffff:0:0/96 (e.g. 2001:db8::/32)' };
    } else if (rangesMeet(range, COMPAT_BLOCK) && !(prefix === 128 && ip.bytes.subarray(0, 15).every((x) => x === 0) && ip.bytes[15] === 1)) {
      const v4 = Array.from(ip.bytes.subarray(12)).join('.');
      return { problem: `${shown} lies in ::/96, the deprecated IPv4-compatible block (RFC 4291 §2.5.5.1) that no client connects from`, fix: `write an IPv4 address in IPv4 form (e.g. ${v4}/${Math.max(0, prefix - 96)}), and IPv6 loopback as ::1` };
    }
  }
  const bytes = maskTo(ip, prefix);
  const net = { family: ip.family, bytes, prefix };
  return { ...net, text: `${ipText(net)}/${prefix}` };
}

/** readNetwork without the reason: the range, or undefined when it is refused. */
export function parseNetwork(text: string): Network | undefined {
  const r = readNetwork(text);
  return isNetworkProblem(r) ? undefined : r;
}

/**
 * Compiles a list of ranges (each through readNetwork) for matching client addresses: `match`
 * folds the client's address the same way (::ffff:a.b.c.d is a.b.c.d) and gives the narrowest
 * range holding it (its `text` as written in the config). Throws `<key>[i]: <problem>. Fix: <fix>` for a refused entry.
 */
export function compileNetworks(list: readonly string[], key: string): { match(address: string): Network | undefined; readonly size: number } {
  const table = new NetworkTable<Network>();
  list.forEach((text, i) => {
    const r = readNetwork(text);
    if (isNetworkProblem(r)) throw new Error(`${key}[${i}]: ${r.problem}. Fix: ${r.fix}`);
    // Matched as the canonical range, named in logs as the operator wrote it.
    table.add(r, { ...r, text: text.trim() });
  });
  return {
    match(address) {
      const ip = parseIp(address);
      return ip ? table.match(ip)?.value : undefined;
    },
    size: table.size,
  };
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
