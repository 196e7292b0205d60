// A scripted SMTP client for dialogue tests: send lines, read whole (multi-line) replies, and
// assert on them. Speaks plain TCP, implicit TLS, and STARTTLS upgrades.
import net from 'node:net';
import tls from 'node:tls';
import assert from 'node:assert/strict';

export interface SmtpReplyText {
  readonly code: number;
  /** All lines joined with "\n", each without its "250-" prefix. */
  readonly text: string;
  /** The raw reply as received. */
  readonly raw: string;
}

export interface Dialog {
  /** Reads the next reply and asserts it starts with `prefix` (e.g. "250", "554 5.7.1") or matches. */
  expect(prefix: string | RegExp): Promise<SmtpReplyText>;
  /** Reads the next reply whatever it is. */
  read(): Promise<SmtpReplyText>;
  /** Sends one command line (CRLF added). */
  say(line: string): { expect(prefix: string | RegExp): Promise<SmtpReplyText>; read(): Promise<SmtpReplyText> };
  /** Sends raw bytes as they are. */
  send(data: string | Buffer): void;
  /** Upgrades to TLS after a 220 to STARTTLS. */
  startTls(): Promise<void>;
  /** Resolves when the server closed the connection. */
  closed(): Promise<void>;
  close(): void;
  readonly socket: net.Socket;
}

export async function dial(port: number, opts: { tls?: boolean; host?: string; timeoutMs?: number; prelude?: Buffer } = {}): Promise<Dialog> {
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let socket: net.Socket = await new Promise((resolve, reject) => {
    const s = opts.tls ? tls.connect({ host, port, rejectUnauthorized: false }, () => resolve(s)) : net.connect({ host, port }, () => resolve(s));
    s.once('error', reject);
  });
  if (opts.prelude) socket.write(opts.prelude);
  let buffer = '';
  let waiting: (() => void) | undefined;
  let ended = false;
  let endWaiters: Array<() => void> = [];
  const attach = (s: net.Socket): void => {
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buffer += d;
      waiting?.();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      ended = true;
      waiting?.();
      endWaiters.forEach((f) => f());
      endWaiters = [];
    });
  };
  attach(socket);

  const tryParse = (): SmtpReplyText | undefined => {
    let pos = 0;
    const lines: string[] = [];
    for (;;) {
      const nl = buffer.indexOf('\r\n', pos);
      if (nl === -1) return undefined;
      const line = buffer.slice(pos, nl);
      lines.push(line);
      pos = nl + 2;
      if (line.length < 4 || line[3] === ' ') {
        const raw = buffer.slice(0, pos);
        buffer = buffer.slice(pos);
        return { code: Number(line.slice(0, 3)), text: lines.map((l) => l.slice(4)).join('\n'), raw };
      }
    }
  };

  const read = async (): Promise<SmtpReplyText> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = tryParse();
      if (r) return r;
      if (ended) throw new Error(`connection closed while waiting for a reply (buffer: ${JSON.stringify(buffer)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms (buffer: ${JSON.stringify(buffer)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        waiting = () => {
          clearTimeout(t);
          waiting = undefined;
          resolve();
        };
      });
    }
  };

  const expect = async (prefix: string | RegExp): Promise<SmtpReplyText> => {
    const r = await read();
    if (typeof prefix === 'string') assert.ok(r.raw.startsWith(prefix), `expected reply starting ${JSON.stringify(prefix)}, got ${JSON.stringify(r.raw)}`);
    else assert.match(r.raw, prefix);
    return r;
  };

  const dialog: Dialog = {
    get socket() {
      return socket;
    },
    expect,
    read,
    say(line) {
      socket.write(`${line}\r\n`);
      return { expect, read };
    },
    send(data) {
      socket.write(data);
    },
    async startTls() {
      socket.removeAllListeners('data');
      socket.removeAllListeners('close');
      const plain = socket;
      socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' }, () => resolve(s));
        s.once('error', reject);
      });
      attach(socket);
    },
    closed() {
      return ended ? Promise.resolve() : new Promise((resolve) => endWaiters.push(resolve));
    },
    close() {
      socket.destroy();
    },
  };
  return dialog;
}
