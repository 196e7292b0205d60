// Builds PROXY protocol headers (v1 text, v2 binary) as a proxy sends them, per HAProxy's
// proxy-protocol.txt. The client side of proxy.ts: used by `mailward relay-test` to claim a
// client address, and by test harnesses that play a proxy in front of the server.
import net from 'node:net';
import { V2_SIGNATURE } from './proxy.ts';

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

/** Thrown for an address or port that cannot go into a header; the message names the value. */
export class ProxyHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProxyHeaderError';
  }
}

function checkPort(p: ProxyAddress): void {
  if (!Number.isInteger(p.port) || p.port < 0 || p.port > 65535) throw new ProxyHeaderError(`PROXY header: port ${p.port} is not in 0..65535`);
}

function family(address: string): 4 | 6 {
  const f = net.isIP(address);
  if (f !== 4 && f !== 6) throw new ProxyHeaderError(`PROXY header: ${JSON.stringify(address)} is not an IP address`);
  return f;
}

/**
 * Source and destination must share a family (proxy-protocol.txt §2.1 and §2.2 carry one
 * protocol per header). When they differ, the IPv4 one is written as an IPv4-mapped IPv6
 * address (`::ffff:a.b.c.d`), which the receiver reads back as the same IPv4 address.
 */
function align(source: ProxyAddress, destination: ProxyAddress): { fam: 4 | 6; src: ProxyAddress; dst: ProxyAddress } {
  checkPort(source);
  checkPort(destination);
  const fs = family(source.address);
  const fd = family(destination.address);
  if (fs === fd) return { fam: fs, src: source, dst: destination };
  const map = (p: ProxyAddress): ProxyAddress => (net.isIPv4(p.address) ? { address: `::ffff:${p.address}`, port: p.port } : p);
  return { fam: 6, src: map(source), dst: map(destination) };
}

/** `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` (proxy-protocol.txt §2.1). */
export function proxyV1Header(source: ProxyAddress, destination: ProxyAddress): Buffer {
  const { fam, src, dst } = align(source, destination);
  return Buffer.from(`PROXY TCP${fam} ${src.address} ${dst.address} ${src.port} ${dst.port}\r\n`, 'latin1');
}

/** The 16 bytes of an IPv6 address (handles `::` and a dotted IPv4 tail). */
export function ipv6Bytes(address: string): Buffer {
  if (!net.isIPv6(address)) throw new ProxyHeaderError(`PROXY header: ${JSON.stringify(address)} is not an IPv6 address`);
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const maybeV4 = text.slice(lastColon + 1);
  if (net.isIPv4(maybeV4)) {
    tail.push(...maybeV4.split('.').map(Number));
    // Replace the dotted tail by two hex groups so the rest is plain hex groups.
    text = `${text.slice(0, lastColon + 1)}${((tail[0]! << 8) | tail[1]!).toString(16)}:${((tail[2]! << 8) | tail[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const zeros = 8 - head.length - rest.length;
  const groups = [...head, ...Array<string>(halves.length > 1 ? zeros : 0).fill('0'), ...rest];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

/**
 * A v2 header with the PROXY command over TCP (proxy-protocol.txt §2.2): signature, version 2
 * and command 1, family AF_INET (0x11) or AF_INET6 (0x21) with STREAM, length, addresses, ports.
 * `command: 'LOCAL'` builds the health-check form, which carries no address.
 */
export function proxyV2Header(source: ProxyAddress, destination: ProxyAddress, command: 'PROXY' | 'LOCAL' = 'PROXY'): Buffer {
  if (command === 'LOCAL') return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const { fam, src, dst } = align(source, destination);
  const bytes = fam === 4 ? [ipv4Bytes(src.address), ipv4Bytes(dst.address)] : [ipv6Bytes(src.address), ipv6Bytes(dst.address)];
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(src.port, 0);
  ports.writeUInt16BE(dst.port, 2);
  const block = Buffer.concat([...bytes, ports]);
  const fixed = Buffer.from([0x21, fam === 4 ? 0x11 : 0x21, 0, 0]);
  fixed.writeUInt16BE(block.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, block]);
}

/** Either version, by number. */
export function proxyHeader(version: 1 | 2, source: ProxyAddress, destination: ProxyAddress): Buffer {
  return version === 1 ? proxyV1Header(source, destination) : proxyV2Header(source, destination);
}
