// A small authoritative DNS server on 127.0.0.1 (UDP and TCP on one free port) for tests: zone
// data in memory (A, AAAA, MX, TXT, PTR, CNAME, TLSA with TTLs), NXDOMAIN for unknown names inside a
// zone, and zones that never answer or answer SERVFAIL. Wire format per RFC 1035 §4.
import { createSocket, type Socket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';

export type RrType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR' | 'CNAME' | 'TLSA';
export type ZoneMode = 'answer' | 'timeout' | 'servfail' | 'refused';

/** Records of one name. TXT entries: a string (split into 255-byte strings) or the strings. */
export interface NameRecords {
  A?: string[];
  AAAA?: string[];
  /** "10 mx.example.net"; "0 ." is a null MX (RFC 7505). */
  MX?: string[];
  TXT?: Array<string | string[]>;
  PTR?: string[];
  CNAME?: string;
  /** "3 1 1 <hex>": usage, selector, matching type, association data (RFC 6698 §2.1). */
  TLSA?: string[];
  /** TTL of every record of this name, in seconds (default: the zone's, else 300). */
  ttl?: number;
}

/** A zone: records of its apex, and of names inside it, relative ("mx", "2.0.0.127") or absolute
 * ("mx.example.net."). Names inside record data (MX, CNAME, PTR) are always absolute. */
export interface ZoneSpec extends NameRecords {
  names?: Record<string, NameRecords>;
  mode?: ZoneMode;
}

export interface TestDns {
  readonly port: number;
  /** "127.0.0.1:PORT", for `dns.servers` in a config. */
  readonly address: string;
  /** A node Resolver that asks only this server (time-out `timeoutMs`, default 300 ms, one try). */
  resolver(timeoutMs?: number): Resolver;
  /** Replaces the records of one type of a name (the name must lie inside a zone); an empty list
   * removes them. Values as in NameRecords (a CNAME takes one target). */
  set(name: string, type: RrType, records: ReadonlyArray<string | string[]>, ttl?: number): void;
  /** Makes a zone answer normally, never answer, or answer SERVFAIL / REFUSED. */
  setMode(zone: string, mode: ZoneMode): void;
  /** How many questions for `name` (and `type`, when given) reached the server. */
  queries(name: string, type?: RrType): number;
  close(): Promise<void>;
}

interface AfterHook {
  after(fn: () => unknown): void;
}

const TYPE_CODES: Record<RrType, number> = { A: 1, CNAME: 5, PTR: 12, MX: 15, TXT: 16, AAAA: 28, TLSA: 52 };
const CODE_TYPES = new Map<number, RrType>(Object.entries(TYPE_CODES).map(([k, v]) => [v, k as RrType]));
const T_SOA = 6;
const T_OPT = 41;
const RCODE = { noError: 0, servFail: 2, nxDomain: 3, refused: 5 } as const;

interface RrSet {
  ttl: number;
  data: string[];
}
interface Zone {
  name: string;
  mode: ZoneMode;
  /** name → type → records */
  names: Map<string, Map<RrType, RrSet>>;
}

const norm = (name: string): string => name.toLowerCase().replace(/\.$/, '');

function fqdn(label: string, zone: string): string {
  if (label === '@' || label === '') return zone;
  if (label.endsWith('.')) return norm(label);
  return `${norm(label)}.${zone}`;
}

function toSets(r: NameRecords): Map<RrType, RrSet> {
  const ttl = r.ttl ?? 300;
  const out = new Map<RrType, RrSet>();
  for (const t of Object.keys(TYPE_CODES) as RrType[]) {
    const v = r[t];
    if (v === undefined) continue;
    if (typeof v === 'string') out.set(t, { ttl, data: [v] });
    // TXT data is kept as a JSON list of its character-strings.
    else if (t === 'TXT') out.set(t, { ttl, data: v.map((x) => JSON.stringify(Array.isArray(x) ? x : [x])) });
    else out.set(t, { ttl, data: v as string[] });
  }
  return out;
}

// --- wire format ---------------------------------------------------------------------------

function encodeName(name: string): Buffer {
  const n = norm(name);
  if (n === '') return Buffer.from([0]);
  const parts: Buffer[] = [];
  for (const label of n.split('.')) {
    const b = Buffer.from(label, 'utf8');
    if (b.length === 0 || b.length > 63) throw new Error(`bad label in ${JSON.stringify(name)}`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** Reads a name at `off`, following compression pointers (RFC 1035 §4.1.4). */
function readName(msg: Buffer, off: number): { name: string; end: number } {
  const labels: string[] = [];
  let end = -1;
  let hops = 0;
  for (;;) {
    if (off >= msg.length) throw new Error('name runs past the message');
    const len = msg[off]!;
    if ((len & 0xc0) === 0xc0) {
      if (++hops > 20) throw new Error('compression loop');
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | msg[off + 1]!;
      continue;
    }
    if (len === 0) {
      if (end < 0) end = off + 1;
      return { name: labels.join('.'), end };
    }
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
}

function ipv6Bytes(text: string): Buffer {
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

function rdata(type: RrType, value: string): Buffer {
  switch (type) {
    case 'A':
      return Buffer.from(value.split('.').map(Number));
    case 'AAAA':
      return ipv6Bytes(value);
    case 'MX': {
      const [pref = '0', host = '.'] = value.trim().split(/\s+/);
      const p = Buffer.alloc(2);
      p.writeUInt16BE(Number(pref));
      return Buffer.concat([p, encodeName(host)]);
    }
    case 'TXT': {
      const strings = JSON.parse(value) as string[];
      const parts: Buffer[] = [];
      for (const s of strings) {
        let b = Buffer.from(s, 'utf8');
        // One character-string holds at most 255 octets (RFC 1035 §3.3.14); split longer text.
        do {
          const chunk = b.subarray(0, 255);
          parts.push(Buffer.from([chunk.length]), chunk);
          b = b.subarray(255);
        } while (b.length > 0);
      }
      return Buffer.concat(parts);
    }
    case 'PTR':
    case 'CNAME':
      return encodeName(value);
    case 'TLSA': {
      const [usage = '3', selector = '1', mtype = '1', hex = ''] = value.trim().split(/\s+/);
      return Buffer.concat([Buffer.from([Number(usage), Number(selector), Number(mtype)]), Buffer.from(hex, 'hex')]);
    }
  }
}

function rr(name: string, type: number, ttl: number, data: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(1, 2); // class IN
  fixed.writeUInt32BE(ttl, 4);
  fixed.writeUInt16BE(data.length, 8);
  return Buffer.concat([encodeName(name), fixed, data]);
}

function soa(zone: string): Buffer {
  const tail = Buffer.alloc(20);
  tail.writeUInt32BE(1, 0); // serial
  tail.writeUInt32BE(3600, 4);
  tail.writeUInt32BE(600, 8);
  tail.writeUInt32BE(86400, 12);
  tail.writeUInt32BE(60, 16); // minimum: the negative-caching TTL (RFC 2308 §4)
  return rr(zone, T_SOA, 60, Buffer.concat([encodeName(`ns.${zone}`), encodeName(`hostmaster.${zone}`), tail]));
}

interface Query {
  id: number;
  flags: number;
  qname: string;
  qtype: number;
  question: Buffer;
  udpSize: number;
}

function parseQuery(msg: Buffer): Query | undefined {
  if (msg.length < 12) return undefined;
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response, not a query
  const qd = msg.readUInt16BE(4);
  const ar = msg.readUInt16BE(10);
  if (qd !== 1) return undefined;
  const { name, end } = readName(msg, 12);
  const qtype = msg.readUInt16BE(end);
  const question = msg.subarray(12, end + 4);
  let udpSize = 512;
  // EDNS0 (RFC 6891 §6.1.2): the OPT record's class is the client's UDP payload size.
  let off = end + 4;
  for (let i = 0; i < ar && off < msg.length; i++) {
    const r = readName(msg, off);
    const type = msg.readUInt16BE(r.end);
    const cls = msg.readUInt16BE(r.end + 2);
    const rdlen = msg.readUInt16BE(r.end + 8);
    if (type === T_OPT) udpSize = Math.max(512, cls);
    off = r.end + 10 + rdlen;
  }
  return { id, flags, qname: norm(name), qtype, question, udpSize };
}

function header(q: Query, rcode: number, an: number, ns: number, tc = false): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(q.id, 0);
  // QR, opcode copied, AA, TC, RD copied; RA off: an authoritative server does not recurse.
  const flags = 0x8000 | (q.flags & 0x7800) | 0x0400 | (tc ? 0x0200 : 0) | (q.flags & 0x0100) | rcode;
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(an, 6);
  h.writeUInt16BE(ns, 8);
  h.writeUInt16BE(0, 10);
  return h;
}

// --- the server ----------------------------------------------------------------------------

export async function startDns(t: AfterHook | undefined, zones: Record<string, ZoneSpec>): Promise<TestDns> {
  const table: Zone[] = [];
  for (const [zname, spec] of Object.entries(zones)) {
    const zone: Zone = { name: norm(zname), mode: spec.mode ?? 'answer', names: new Map() };
    zone.names.set(zone.name, toSets(spec));
    for (const [label, recs] of Object.entries(spec.names ?? {})) {
      const full = fqdn(label, zone.name);
      const existing = zone.names.get(full) ?? new Map<RrType, RrSet>();
      for (const [k, v] of toSets({ ttl: spec.ttl, ...recs })) existing.set(k, v);
      zone.names.set(full, existing);
    }
    table.push(zone);
  }
  // The longest zone suffix is authoritative for a name.
  const zoneOf = (name: string): Zone | undefined =>
    table.filter((z) => name === z.name || name.endsWith(`.${z.name}`)).sort((a, b) => b.name.length - a.name.length)[0];

  const counts = new Map<string, number>();

  function answer(q: Query): Buffer | undefined {
    const type = CODE_TYPES.get(q.qtype);
    counts.set(`${q.qname} ${type ?? q.qtype}`, (counts.get(`${q.qname} ${type ?? q.qtype}`) ?? 0) + 1);
    const zone = zoneOf(q.qname);
    if (!zone) return Buffer.concat([header(q, RCODE.refused, 0, 0), q.question]);
    if (zone.mode === 'timeout') return undefined;
    if (zone.mode === 'servfail') return Buffer.concat([header(q, RCODE.servFail, 0, 0), q.question]);
    if (zone.mode === 'refused') return Buffer.concat([header(q, RCODE.refused, 0, 0), q.question]);
    const answers: Buffer[] = [];
    let name = q.qname;
    // Follow CNAMEs inside our own data (RFC 1034 §3.6.2), at most a few hops.
    for (let hop = 0; hop < 8; hop++) {
      const z = zoneOf(name);
      const sets = z?.names.get(name);
      if (!z || !sets) {
        if (answers.length > 0) break;
        return Buffer.concat([header(q, RCODE.nxDomain, 0, 1), q.question, soa(zone.name)]);
      }
      const cname = sets.get('CNAME');
      if (cname && type !== 'CNAME') {
        const target = norm(cname.data[0] ?? '');
        answers.push(rr(name, TYPE_CODES.CNAME, cname.ttl, encodeName(target)));
        name = target;
        continue;
      }
      const set = type ? sets.get(type) : undefined;
      if (set) for (const v of set.data) answers.push(rr(name, q.qtype, set.ttl, rdata(type!, v)));
      break;
    }
    if (answers.length === 0) return Buffer.concat([header(q, RCODE.noError, 0, 1), q.question, soa(zone.name)]);
    return Buffer.concat([header(q, RCODE.noError, answers.length, 0), q.question, ...answers]);
  }

  function respond(msg: Buffer, maxSize: number | 'tcp'): Buffer | undefined {
    let q: Query | undefined;
    try {
      q = parseQuery(msg);
    } catch {
      return undefined;
    }
    if (!q) return undefined;
    const out = answer(q);
    if (!out) return undefined;
    const limit = maxSize === 'tcp' ? 65535 : Math.min(maxSize, q.udpSize);
    // Too big for UDP: set TC so the client retries over TCP (RFC 1035 §4.2.1).
    if (out.length > limit) return Buffer.concat([header(q, out.readUInt16BE(2) & 0x000f, 0, 0, true), q.question]);
    return out;
  }

  let udp: Socket | undefined;
  let tcp: Server | undefined;
  const conns = new Set<TcpSocket>();
  for (let attempt = 0; attempt < 10 && !tcp; attempt++) {
    const u = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      u.once('error', reject);
      u.bind(0, '127.0.0.1', () => resolve());
    });
    const port = u.address().port;
    const s = createServer((c) => {
      conns.add(c);
      c.on('close', () => conns.delete(c));
      c.on('error', () => c.destroy());
      let buf = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        // TCP messages carry a two-octet length prefix (RFC 1035 §4.2.2).
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const len = buf.readUInt16BE(0);
          const msg = buf.subarray(2, 2 + len);
          buf = buf.subarray(2 + len);
          const out = respond(msg, 'tcp');
          if (out) {
            const prefix = Buffer.alloc(2);
            prefix.writeUInt16BE(out.length);
            c.write(Buffer.concat([prefix, out]));
          }
        }
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      udp = u;
      tcp = s;
    } else {
      u.close();
    }
  }
  if (!udp || !tcp) throw new Error('startDns: no port free for both UDP and TCP on 127.0.0.1');
  const sock = udp;
  sock.on('message', (msg, rinfo) => {
    const out = respond(msg, 4096);
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  const port = sock.address().port;
  const resolvers: Resolver[] = [];
  let closed = false;

  const dns: TestDns = {
    port,
    address: `127.0.0.1:${port}`,
    resolver(timeoutMs = 300) {
      const r = new Resolver({ timeout: timeoutMs, tries: 1 });
      r.setServers([`127.0.0.1:${port}`]);
      resolvers.push(r);
      return r;
    },
    set(name, type, records, ttl = 300) {
      const n = norm(name);
      const zone = zoneOf(n);
      if (!zone) throw new Error(`set(${name}): the name lies in no zone of this server`);
      const sets = zone.names.get(n) ?? new Map<RrType, RrSet>();
      const spec: NameRecords = { ttl };
      if (type === 'TXT') spec.TXT = [...records];
      else if (type === 'CNAME') spec.CNAME = records.length > 0 ? String(records[0]) : undefined;
      else spec[type] = records.map(String);
      const fresh = spec[type] === undefined ? undefined : toSets(spec).get(type);
      if (fresh && fresh.data.length > 0) sets.set(type, fresh);
      else sets.delete(type);
      zone.names.set(n, sets);
    },
    setMode(zone, mode) {
      const z = table.find((x) => x.name === norm(zone));
      if (!z) throw new Error(`setMode(${zone}): no such zone`);
      z.mode = mode;
    },
    queries(name, type) {
      const n = norm(name);
      let total = 0;
      for (const [k, v] of counts) {
        const [qn, qt] = k.split(' ');
        if (qn === n && (type === undefined || qt === type)) total += v;
      }
      return total;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const r of resolvers) r.cancel();
      for (const c of conns) c.destroy();
      await new Promise<void>((resolve) => sock.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
  t?.after(() => dns.close());
  return dns;
}
