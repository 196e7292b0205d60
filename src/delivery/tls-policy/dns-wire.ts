// One DNS question straight to a configured server, in wire format (RFC 1035 §4), with EDNS0 and
// the DO bit (RFC 6891, RFC 3225), over UDP and again over TCP when the answer is truncated
// (RFC 7766 §5). Node's resolver never shows the AD bit (RFC 4035 §3.2.3), which DANE needs to
// tell a validated answer from an unsigned one (RFC 7672 §2.1); this module only reports the
// bit — whether to believe it is the caller's decision (dane.ts: only from a trusted resolver).
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';

export const T_A = 1;
export const T_MX = 15;
export const T_AAAA = 28;
export const T_CNAME = 5;
export const T_TLSA = 52;
export const T_RRSIG = 46;

export interface WireRecord {
  readonly name: string;
  readonly type: number;
  readonly data: Buffer;
  /** The whole message and the data's offset, for names compressed in the data (MX). */
  readonly msg: Buffer;
  readonly offset: number;
}

export interface WireAnswer {
  /** RFC 1035 §4.1.1 RCODE: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, … */
  readonly rcode: number;
  /** Authenticated Data: the server says it validated the answer with DNSSEC. */
  readonly ad: boolean;
  /** Authoritative Answer: the server answered from its own zone data, not as a resolver. */
  readonly aa: boolean;
  readonly answers: readonly WireRecord[];
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
    if (label === '') continue;
    const b = Buffer.from(label, 'ascii');
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** The name at `off` (following compression pointers, RFC 1035 §4.1.4) and the offset past it. */
export function readName(msg: Buffer, off: number): { name: string; end: number } {
  const labels: string[] = [];
  let end = -1;
  for (let hops = 0; hops < 64; hops++) {
    const len = msg[off];
    if (len === undefined) throw new Error('truncated name');
    if ((len & 0xc0) === 0xc0) {
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | msg[off + 1]!;
      continue;
    }
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: end < 0 ? off + 1 : end };
    labels.push(msg.toString('ascii', off + 1, off + 1 + len));
    off += 1 + len;
  }
  throw new Error('name compression loop');
}

function question(name: string, type: number): { id: number; msg: Buffer } {
  const id = randomBytes(2).readUInt16BE(0);
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2); // RD
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(1, 10); // one OPT record
  const q = Buffer.alloc(4);
  q.writeUInt16BE(type, 0);
  q.writeUInt16BE(1, 2);
  // OPT: root name, type 41, UDP size 4096, DO bit (RFC 3225 §3): a validating resolver then sets AD.
  const opt = Buffer.from([0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0x00, 0, 0]);
  return { id, msg: Buffer.concat([h, encodeName(name), q, opt]) };
}

function parse(msg: Buffer, id: number): (WireAnswer & { tc: boolean }) | undefined {
  if (msg.length < 12 || msg.readUInt16BE(0) !== id) return undefined;
  const flags = msg.readUInt16BE(2);
  if ((flags & 0x8000) === 0) return undefined; // not a response
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  let off = 12;
  for (let i = 0; i < qd; i++) off = readName(msg, off).end + 4;
  const answers: WireRecord[] = [];
  for (let i = 0; i < an; i++) {
    const { name, end } = readName(msg, off);
    const type = msg.readUInt16BE(end);
    const len = msg.readUInt16BE(end + 8);
    if (end + 10 + len > msg.length) throw new Error('truncated record');
    answers.push({ name, type, data: msg.subarray(end + 10, end + 10 + len), msg, offset: end + 10 });
    off = end + 10 + len;
  }
  return { rcode: flags & 0x000f, ad: (flags & 0x0020) !== 0, aa: (flags & 0x0400) !== 0, tc: (flags & 0x0200) !== 0, answers };
}

function overUdp(server: { address: string; port: number }, name: string, type: number, timeoutMs: number): Promise<WireAnswer & { tc: boolean }> {
  const { id, msg } = question(name, type);
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIPv6(server.address) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => done(new Error(`no answer from ${server.address}:${server.port} within ${timeoutMs} ms`)), timeoutMs);
    const done = (err: Error | undefined, a?: WireAnswer & { tc: boolean }): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(a!);
    };
    sock.on('error', (err) => done(err));
    sock.on('message', (m) => {
      let a;
      try {
        a = parse(m, id);
      } catch (err) {
        done(err as Error);
        return;
      }
      // An answer with another id is someone else's (or forged): keep waiting.
      if (a) done(undefined, a);
    });
    sock.send(msg, server.port, server.address);
  });
}

function overTcp(server: { address: string; port: number }, name: string, type: number, timeoutMs: number): Promise<WireAnswer> {
  const { id, msg } = question(name, type);
  return new Promise((resolve, reject) => {
    const sock = connect({ host: server.address, port: server.port });
    const timer = setTimeout(() => done(new Error(`no answer from ${server.address}:${server.port} (TCP) within ${timeoutMs} ms`)), timeoutMs);
    let buf = Buffer.alloc(0);
    const done = (err: Error | undefined, a?: WireAnswer): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(a!);
    };
    sock.on('error', (err) => done(err));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length, 0);
      sock.write(Buffer.concat([len, msg]));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      try {
        const a = parse(buf.subarray(2, 2 + buf.readUInt16BE(0)), id);
        done(a ? undefined : new Error('a TCP answer for another question'), a);
      } catch (err) {
        done(err as Error);
      }
    });
  });
}

/** Asks `server` ("address[:port]") one question; UDP first, TCP when the UDP answer is truncated. */
export async function queryWire(server: string, name: string, type: number, timeoutMs: number): Promise<WireAnswer> {
  const s = parseServer(server);
  const udp = await overUdp(s, name, type, timeoutMs);
  return udp.tc ? overTcp(s, name, type, timeoutMs) : udp;
}

/** The exchange of an MX record (preference skipped). */
export const mxExchange = (r: WireRecord): string => readName(r.msg, r.offset + 2).name;

/** TLSA rdata as "3 1 1 <hex>" (RFC 6698 §2.2). */
export const tlsaText = (r: WireRecord): string => `${r.data[0]} ${r.data[1]} ${r.data[2]} ${r.data.subarray(3).toString('hex')}`;
