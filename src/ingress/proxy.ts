// PROXY protocol v1 (text) and v2 (binary) header parsing, per HAProxy's proxy-protocol.txt.
// `parseProxyHeader` is a pure function over the bytes received so far (fuzzable); `readProxyHeader`
// reads one header from the start of a socket with a time-out and hands back the bytes after it.
import net from 'node:net';
import type { Socket } from 'node:net';

export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /** LOCAL (v2 health checks) and UNKNOWN/UNSPEC/UNIX families carry no usable client address. */
  readonly command: 'PROXY' | 'LOCAL';
  readonly family: 'TCP4' | 'TCP6' | 'UNKNOWN';
  /** Present for TCP4/TCP6 with the PROXY command: the real client. */
  readonly source?: ProxyEndpoint;
  /** Present with `source`: the address the client connected to. */
  readonly destination?: ProxyEndpoint;
}

export type ProxyParseResult = { readonly status: 'incomplete' } | { readonly status: 'done'; readonly header: ProxyHeader; readonly consumed: number };

/** Thrown for any malformed, oversized or unsupported header; `reason` is safe to log. */
export class ProxyParseError extends Error {
  constructor(readonly reason: string) {
    super(`invalid PROXY header: ${reason}`);
    this.name = 'ProxyParseError';
  }
}

// proxy-protocol.txt §2.1: "a 108-byte buffer is always enough" (107 chars + NUL).
export const V1_MAX_LENGTH = 107;
// §2.2: the 12-byte v2 signature.
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Default cap on the v2 address+TLV block. The spec allows 65535; real proxies send < 600. */
export const DEFAULT_V2_MAX_LENGTH = 2048;

/** True when `buf` (at least its available prefix) looks like the start of a PROXY header. */
export function looksLikeProxyHeader(buf: Buffer): boolean {
  if (buf.length === 0) return false;
  const sig = buf[0] === 0x50 ? V1_PREFIX : V2_SIGNATURE;
  const n = Math.min(buf.length, sig.length);
  // A lone "\r\n" (an empty command line) is not enough to call it a v2 header.
  if (sig === V2_SIGNATURE && n < 5) return false;
  return buf.subarray(0, n).equals(sig.subarray(0, n));
}

/**
 * Parses a PROXY header at the start of `buf`. Returns `incomplete` when more bytes are needed,
 * `done` with the number of bytes the header took, or throws ProxyParseError.
 */
export function parseProxyHeader(buf: Buffer, maxV2Length = DEFAULT_V2_MAX_LENGTH): ProxyParseResult {
  if (buf.length === 0) return { status: 'incomplete' };
  if (buf[0] === 0x50) return parseV1(buf);
  if (buf[0] === 0x0d) return parseV2(buf, maxV2Length);
  throw new ProxyParseError('does not start with a PROXY v1 or v2 signature');
}

function parseV1(buf: Buffer): ProxyParseResult {
  const n = Math.min(buf.length, V1_PREFIX.length);
  if (!buf.subarray(0, n).equals(V1_PREFIX.subarray(0, n))) throw new ProxyParseError('v1: bad signature');
  const lf = buf.indexOf(0x0a);
  const limit = Math.min(buf.length, V1_MAX_LENGTH);
  if (lf === -1 || lf >= V1_MAX_LENGTH) {
    if (buf.length >= V1_MAX_LENGTH) throw new ProxyParseError(`v1: no CRLF within ${V1_MAX_LENGTH} bytes`);
    // Fail early on bytes that can never appear in a v1 line.
    for (let i = 0; i < limit; i++) {
      const c = buf[i]!;
      if ((c < 0x20 && c !== 0x0d) || c > 0x7e) throw new ProxyParseError('v1: non-printable byte');
      if (c === 0x0d && i + 1 < limit) throw new ProxyParseError('v1: CR not followed by LF');
    }
    return { status: 'incomplete' };
  }
  if (lf === 0 || buf[lf - 1] !== 0x0d) throw new ProxyParseError('v1: line does not end with CRLF');
  const line = buf.toString('latin1', 0, lf - 1);
  if (/[^\x20-\x7e]/.test(line)) throw new ProxyParseError('v1: non-printable byte');
  const parts = line.split(' ');
  const proto = parts[1];
  const consumed = lf + 1;
  // §2.1: with UNKNOWN the receiver must ignore everything up to the CRLF.
  if (proto === 'UNKNOWN') return { status: 'done', consumed, header: { version: 1, command: 'PROXY', family: 'UNKNOWN' } };
  if (proto !== 'TCP4' && proto !== 'TCP6') throw new ProxyParseError('v1: protocol must be TCP4, TCP6 or UNKNOWN');
  if (parts.length !== 6) throw new ProxyParseError('v1: expected 5 fields separated by single spaces');
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const check = proto === 'TCP4' ? net.isIPv4 : net.isIPv6;
  if (!check(src) || !check(dst)) throw new ProxyParseError(`v1: address is not a valid ${proto === 'TCP4' ? 'IPv4' : 'IPv6'} address`);
  return {
    status: 'done',
    consumed,
    header: {
      version: 1,
      command: 'PROXY',
      family: proto,
      source: { address: canonicalIp(src, proto), port: parsePort(sport) },
      destination: { address: canonicalIp(dst, proto), port: parsePort(dport) },
    },
  };
}

function parsePort(s: string): number {
  // §2.1: decimal integer in [0..65535]; leading zeros are not canonical, refuse them.
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) throw new ProxyParseError('v1: bad port');
  const n = Number(s);
  if (n > 65535) throw new ProxyParseError('v1: port out of range');
  return n;
}

function canonicalIp(address: string, proto: 'TCP4' | 'TCP6'): string {
  if (proto === 'TCP4') return address;
  return new net.SocketAddress({ address, family: 'ipv6' }).address;
}

function parseV2(buf: Buffer, maxV2Length: number): ProxyParseResult {
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  if (!buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) throw new ProxyParseError('v2: bad signature');
  if (buf.length < 16) return { status: 'incomplete' };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 0x2) throw new ProxyParseError(`v2: unsupported version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd !== 0x0 && cmd !== 0x1) throw new ProxyParseError(`v2: unsupported command ${cmd}`);
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  if (len > maxV2Length) throw new ProxyParseError(`v2: header length ${len} exceeds the limit of ${maxV2Length}`);
  const af = fam >> 4;
  const transport = fam & 0x0f;
  if (af > 3) throw new ProxyParseError(`v2: unsupported address family ${af}`);
  if (transport > 2) throw new ProxyParseError(`v2: unsupported transport ${transport}`);
  // Validate what the fixed part promises before waiting for the rest.
  const need = cmd === 0x1 ? [0, 12, 36, 216][af]! : 0;
  if (len < need) throw new ProxyParseError(`v2: length ${len} too short for the address family`);
  if (cmd === 0x1 && (af === 1 || af === 2) && transport !== 1) throw new ProxyParseError('v2: only STREAM transport is supported for TCP');
  if (buf.length < 16 + len) return { status: 'incomplete' };
  const consumed = 16 + len;
  // §2.2: LOCAL → the receiver uses the real connection endpoints; the block is ignored.
  if (cmd === 0x0) return { status: 'done', consumed, header: { version: 2, command: 'LOCAL', family: 'UNKNOWN' } };
  if (af === 1) {
    return {
      status: 'done',
      consumed,
      header: {
        version: 2,
        command: 'PROXY',
        family: 'TCP4',
        source: { address: formatIPv4(buf, 16), port: buf.readUInt16BE(24) },
        destination: { address: formatIPv4(buf, 20), port: buf.readUInt16BE(26) },
      },
    };
  }
  if (af === 2) {
    return {
      status: 'done',
      consumed,
      header: {
        version: 2,
        command: 'PROXY',
        family: 'TCP6',
        source: { address: formatIPv6(buf, 16), port: buf.readUInt16BE(48) },
        destination: { address: formatIPv6(buf, 32), port: buf.readUInt16BE(50) },
      },
    };
  }
  // AF_UNSPEC or AF_UNIX: no IP to report; §2.2 lets the receiver use the real endpoints.
  return { status: 'done', consumed, header: { version: 2, command: 'PROXY', family: 'UNKNOWN' } };
}

function formatIPv4(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

function formatIPv6(buf: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(at + i * 2).toString(16));
  // SocketAddress gives the RFC 5952 canonical text (zero-run compression, mapped IPv4).
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

export interface ReadProxyOptions {
  /** Give up when no complete header arrived in time (default 5000 ms). */
  readonly timeoutMs?: number;
  readonly maxV2Length?: number;
}

export interface ProxyReadResult {
  readonly header: ProxyHeader;
  /** Bytes that followed the header in the same read; they belong to the next protocol layer. */
  readonly rest: Buffer;
}

/**
 * Reads a PROXY header from the start of `socket`. On success the socket is left paused with no
 * listeners of ours, and the caller must deliver `rest` to the next layer (e.g. `socket.unshift`).
 * Rejects with ProxyParseError on a malformed header, time-out or early close.
 */
export function readProxyHeader(socket: Socket, opts: ReadProxyOptions = {}): Promise<ProxyReadResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    };
    const fail = (reason: string): void => {
      cleanup();
      reject(new ProxyParseError(reason));
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let r: ProxyParseResult;
      try {
        r = parseProxyHeader(buf, opts.maxV2Length);
      } catch (err) {
        fail(err instanceof ProxyParseError ? err.reason : String(err));
        return;
      }
      if (r.status === 'done') {
        cleanup();
        resolve({ header: r.header, rest: buf.subarray(r.consumed) });
      }
    };
    const onEnd = (): void => fail('connection closed before a complete header');
    const onError = (err: Error): void => fail(`socket error before a complete header: ${err.message}`);
    const timer = setTimeout(() => fail(`no complete header within ${timeoutMs} ms`), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    socket.resume();
  });
}
