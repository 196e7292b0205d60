// TLSA lookups (RFC 6698 §2) straight to the configured DNS server over UDP: node's resolver has
// no TLSA type before Node 22.15 and never shows the AD bit, which DANE needs (RFC 7672 §2.1).
// One question, wire format per RFC 1035 §4; the answer's AD flag is returned for the caller to
// trust only from a validating resolver it trusts.
import { createSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';

const T_TLSA = 52;

export interface TlsaAnswer {
  /** RFC 1035 §4.1.1 RCODE: 0 NOERROR, 3 NXDOMAIN, … */
  readonly rcode: number;
  /** Authenticated Data (RFC 4035 §3.2.3): the resolver validated the answer with DNSSEC. */
  readonly ad: boolean;
  /** "3 1 1 <hex>" per record. */
  readonly records: readonly string[];
}

/** "127.0.0.1:5353", "[::1]:53", "10.0.0.2" → address and port. */
export function parseServer(s: string): { address: string; port: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) return { address: v6[1]!, port: Number(v6[2] ?? 53) };
  if (isIPv6(s)) return { address: s, port: 53 };
  const [address = s, port = '53'] = s.split(':');
  return { address, port: Number(port) };
}

function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.replace(/\.$/, '').split('.')) {
    const b = Buffer.from(label, 'ascii');
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** The offset just past the name at `off` (labels or a compression pointer, RFC 1035 §4.1.4). */
function skipName(msg: Buffer, off: number): number {
  for (;;) {
    const len = msg[off];
    if (len === undefined) throw new Error('truncated name');
    if ((len & 0xc0) === 0xc0) return off + 2;
    if (len === 0) return off + 1;
    off += 1 + len;
  }
}

function query(name: string): { id: number; msg: Buffer } {
  const id = randomBytes(2).readUInt16BE(0);
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2); // RD
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(1, 10); // one OPT record
  const q = Buffer.alloc(4);
  q.writeUInt16BE(T_TLSA, 0);
  q.writeUInt16BE(1, 2);
  // EDNS0 with the DO bit (RFC 6891 §6.1, RFC 3225): a validating resolver then sets AD.
  const opt = Buffer.from([0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0x00, 0, 0]);
  return { id, msg: Buffer.concat([h, encodeName(name), q, opt]) };
}

function parse(msg: Buffer, id: number): TlsaAnswer | undefined {
  if (msg.length < 12 || msg.readUInt16BE(0) !== id) return undefined;
  const flags = msg.readUInt16BE(2);
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  let off = 12;
  for (let i = 0; i < qd; i++) off = skipName(msg, off) + 4;
  const records: string[] = [];
  for (let i = 0; i < an; i++) {
    off = skipName(msg, off);
    const type = msg.readUInt16BE(off);
    const len = msg.readUInt16BE(off + 8);
    const data = msg.subarray(off + 10, off + 10 + len);
    off += 10 + len;
    if (type === T_TLSA && data.length >= 3) records.push(`${data[0]} ${data[1]} ${data[2]} ${data.subarray(3).toString('hex')}`);
  }
  return { rcode: flags & 0x000f, ad: (flags & 0x0020) !== 0, records };
}

/** Asks the first of `servers` (default: the system's) for the TLSA records of `name`. */
export function resolveTlsa(name: string, servers: readonly string[], timeoutMs: number): Promise<TlsaAnswer> {
  const server = parseServer(servers[0] ?? getServers()[0] ?? '127.0.0.1');
  const { id, msg } = query(name);
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIPv6(server.address) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done(new Error(`no answer from ${server.address}:${server.port} within ${timeoutMs} ms`)), timeoutMs);
    const done = (err: Error | undefined, a?: TlsaAnswer): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(a!);
    };
    sock.on('error', (err) => done(err));
    sock.on('message', (m) => {
      let a: TlsaAnswer | undefined;
      try {
        a = parse(m, id);
      } catch (err) {
        done(err as Error);
        return;
      }
      if (a) done(undefined, a);
    });
    sock.send(msg, server.port, server.address);
  });
}
