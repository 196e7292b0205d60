// A small client for ClamAV's daemon (clamd, see `man clamd`): INSTREAM to scan a message it
// cannot read from disk, and PING to tell whether it is up. One connection per call, over TCP or a
// unix socket; every call has a deadline and an abort signal, and answers data, never throws.
import net from 'node:net';

export type ClamdAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

export type ScanResult = { readonly kind: 'clean' } | { readonly kind: 'infected'; readonly name: string } | { readonly kind: 'error'; readonly message: string };

export type PingResult = { readonly kind: 'ok' } | { readonly kind: 'error'; readonly message: string };

export interface ClamdCallOptions {
  /** The whole call — connect, send, answer — must be done within this. */
  readonly timeoutMs: number;
  /** Aborting closes the socket; the call answers an error. */
  readonly signal?: AbortSignal;
}

/** How an address is written in the config: `tcp:HOST:PORT` or `unix:/absolute/path`. */
export const CLAMD_ADDRESS_FORMS = 'tcp:HOST:PORT (e.g. tcp:127.0.0.1:3310) or unix:/absolute/path (e.g. unix:/var/run/clamav/clamd.ctl)';

/** Parses `tcp:HOST:PORT` (an IPv6 host in brackets: `tcp:[::1]:3310`) or `unix:/path`; undefined when neither. */
export function parseClamdAddress(text: string): ClamdAddress | undefined {
  if (text.startsWith('unix:')) {
    const p = text.slice('unix:'.length);
    return p.startsWith('/') && !p.includes('\0') ? { kind: 'unix', path: p } : undefined;
  }
  if (!text.startsWith('tcp:')) return undefined;
  const rest = text.slice('tcp:'.length);
  const colon = rest.lastIndexOf(':');
  if (colon <= 0) return undefined;
  let host = rest.slice(0, colon);
  const portText = rest.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (net.isIPv6(host)) return { kind: 'tcp', host, port };
    return undefined;
  }
  // A bare IPv6 address would be ambiguous with the port's colon.
  if (host.includes(':') || !/^[A-Za-z0-9.-]+$/.test(host)) return undefined;
  return { kind: 'tcp', host, port };
}

export function formatClamdAddress(a: ClamdAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `tcp:${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

// A caller's chunk may be the whole message: it is sent as frames of at most this size, so
// back-pressure works per frame and an early answer from clamd stops the sending soon.
const MAX_FRAME = 64 * 1024;

/**
 * Streams `chunks` to clamd with zINSTREAM: each chunk framed as a 4-byte big-endian length and
 * the bytes, then a zero-length chunk to end the stream (`man clamd`, INSTREAM). Empty chunks from
 * the caller are skipped, since a zero length would end the stream early. Answers:
 * `stream: OK` → clean; `stream: <Name> FOUND` → infected; anything else (`... ERROR`, notably
 * `INSTREAM size limit exceeded. ERROR` past clamd's StreamMaxLength) → error.
 */
export async function scanStream(address: ClamdAddress, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, opts: ClamdCallOptions): Promise<ScanResult> {
  const answer = await converse(address, opts, async (send) => {
    await send(Buffer.from('zINSTREAM\0', 'latin1'));
    for await (const chunk of chunks) {
      for (let at = 0; at < chunk.length; at += MAX_FRAME) {
        const part = chunk.subarray(at, Math.min(chunk.length, at + MAX_FRAME));
        const head = Buffer.alloc(4);
        head.writeUInt32BE(part.length, 0);
        if (!(await send(head)) || !(await send(part))) return;
      }
    }
    await send(Buffer.alloc(4));
  });
  if (answer.kind === 'error') return answer;
  const text = answer.text;
  if (text === 'stream: OK') return { kind: 'clean' };
  const found = /^stream: (.+) FOUND$/.exec(text);
  if (found) return { kind: 'infected', name: found[1]! };
  return { kind: 'error', message: `clamd at ${formatClamdAddress(address)} answered ${JSON.stringify(text)}` };
}

/** zPING → PONG: whether clamd is up and answering (`mailward doctor`). */
export async function ping(address: ClamdAddress, opts: ClamdCallOptions): Promise<PingResult> {
  const answer = await converse(address, opts, async (send) => {
    await send(Buffer.from('zPING\0', 'latin1'));
  });
  if (answer.kind === 'error') return answer;
  if (answer.text === 'PONG') return { kind: 'ok' };
  return { kind: 'error', message: `clamd at ${formatClamdAddress(address)} answered ${JSON.stringify(answer.text)} to PING, not "PONG"` };
}

type Answer = { readonly kind: 'answer'; readonly text: string } | { readonly kind: 'error'; readonly message: string };

/** Sends a chunk; false when the call is over (answered, failed, timed out), so the writer stops. */
type Send = (data: Uint8Array) => Promise<boolean>;

// clamd's answers are one short line; a longer one is not clamd.
const MAX_ANSWER = 4096;

/**
 * One exchange: connect, let `write` send the command (with back-pressure), and read the answer up
 * to its NUL (the `z` prefix asks clamd to end it with one). clamd may answer before the writer is
 * done — it does when a stream passes StreamMaxLength — and that answer counts.
 */
function converse(address: ClamdAddress, opts: ClamdCallOptions, write: (send: Send) => Promise<void>): Promise<Answer> {
  const where = formatClamdAddress(address);
  if (opts.signal?.aborted) return Promise.resolve({ kind: 'error', message: `scan at ${where} aborted before it started` });
  return new Promise<Answer>((resolve) => {
    let done = false;
    const received: Buffer[] = [];
    let size = 0;
    const socket = address.kind === 'unix' ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
    const finish = (a: Answer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      for (const w of drainWaiters) w();
      drainWaiters = [];
      resolve(a);
    };
    const fail = (message: string): void => finish({ kind: 'error', message });
    const timer = setTimeout(() => fail(`clamd at ${where} did not answer within ${opts.timeoutMs} ms`), opts.timeoutMs);
    const onAbort = (): void => fail(`scan at ${where} aborted`);
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    // Partial answer text, kept for when the connection drops before the NUL.
    const partial = (): string => Buffer.concat(received).toString('latin1').replace(/\0.*$/s, '').trim();
    socket.on('data', (d: Buffer) => {
      received.push(d);
      size += d.length;
      const nul = d.indexOf(0);
      if (nul >= 0) finish({ kind: 'answer', text: partial() });
      else if (size > MAX_ANSWER) fail(`clamd at ${where} sent ${size} bytes without ending its answer`);
    });
    socket.on('error', (err: Error) => {
      // An answer already read counts even when writing then fails (clamd closed after it).
      const got = partial();
      if (got !== '') finish({ kind: 'answer', text: got });
      else fail(`clamd at ${where}: ${err.message}`);
    });
    socket.on('close', () => {
      const got = partial();
      if (got !== '') finish({ kind: 'answer', text: got });
      else fail(`clamd at ${where} closed the connection without an answer`);
    });

    let drainWaiters: Array<() => void> = [];
    const send: Send = async (data) => {
      if (done) return false;
      if (socket.write(data)) return !done;
      await new Promise<void>((r) => {
        const wake = (): void => {
          socket.off('drain', wake);
          drainWaiters = drainWaiters.filter((w) => w !== wake);
          r();
        };
        drainWaiters.push(wake);
        socket.once('drain', wake);
      });
      return !done;
    };
    socket.once('connect', () => {
      write(send).catch((err: unknown) => fail(`reading the message for clamd at ${where} failed: ${err instanceof Error ? err.message : String(err)}`));
    });
  });
}
