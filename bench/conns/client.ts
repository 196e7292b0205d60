// A minimal SMTP client for the connection benchmark: opens sessions that get the greeting, say
// EHLO and then sit idle, asks an idle session for a NOOP, and times whole transactions. It reads
// replies line by line (RFC 5321 §4.2.1: "xyz-" continues a reply, "xyz " ends it).
import { connect, type Socket } from 'node:net';
import { CLIENT_HELO, RECIPIENT, SENDER } from '../smtp/mailward.ts';

/** Reads complete SMTP replies from a socket. */
export class ReplyReader {
  #buf = '';
  #waiting: Array<{ resolve: (r: string) => void; reject: (e: Error) => void }> = [];
  #replies: string[] = [];
  #error: Error | undefined;

  constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.#buf += d;
      for (;;) {
        const m = /^(\d{3}) .*\r?\n/m.exec(this.#buf);
        if (!m) break;
        const end = m.index + m[0].length;
        this.#push(this.#buf.slice(0, end));
        this.#buf = this.#buf.slice(end);
      }
    });
    const fail = (e: Error): void => {
      this.#error ??= e;
      for (const w of this.#waiting.splice(0)) w.reject(this.#error);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed by the server')));
  }

  #push(reply: string): void {
    const w = this.#waiting.shift();
    if (w) w.resolve(reply);
    else this.#replies.push(reply);
  }

  /** The next whole reply; rejects when the connection fails or `timeoutMs` passes. */
  next(timeoutMs = 30_000): Promise<string> {
    const r = this.#replies.shift();
    if (r !== undefined) return Promise.resolve(r);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = this.#waiting.filter((x) => x !== entry);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const entry = {
        resolve: (v: string) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiting.push(entry);
    });
  }

  /** Sends `line` and checks that the reply starts with `code`. */
  async say(line: string, code: string, timeoutMs?: number): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return expectCode(await this.next(timeoutMs), code, line);
  }
}

function expectCode(reply: string, code: string, after: string): string {
  if (!reply.startsWith(code)) throw new Error(`after ${after}: expected ${code}, got ${JSON.stringify(reply.trim())}`);
  return reply;
}

function open(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** A session that got the greeting and an answer to EHLO, left idle. */
export async function openIdle(port: number, localAddress: string): Promise<ReplyReader> {
  const s = await open(port, localAddress);
  s.setNoDelay(true);
  const r = new ReplyReader(s);
  expectCode(await r.next(), '220', 'connecting');
  await r.say(`EHLO ${CLIENT_HELO}`, '250');
  return r;
}

/** One whole transaction on a new connection; returns the milliseconds from connect to the 221. */
export async function sendOne(port: number, localAddress: string, body: string): Promise<number> {
  const t0 = performance.now();
  const s = await open(port, localAddress);
  s.setNoDelay(true);
  const r = new ReplyReader(s);
  try {
    expectCode(await r.next(), '220', 'connecting');
    await r.say(`EHLO ${CLIENT_HELO}`, '250');
    await r.say(`MAIL FROM:<${SENDER}>`, '250');
    await r.say(`RCPT TO:<${RECIPIENT}>`, '250');
    await r.say('DATA', '354');
    await r.say(`${body}\r\n.`, '250');
    await r.say('QUIT', '221');
    return performance.now() - t0;
  } finally {
    s.destroy();
  }
}

/** A message of about `size` bytes, with the header fields a DMARC check needs. */
export function message(size: number): string {
  const head = [`From: <${SENDER}>`, `To: <${RECIPIENT}>`, 'Subject: idle-session benchmark', `Date: ${new Date().toUTCString()}`, `Message-ID: <${Date.now()}.${Math.random().toString(36).slice(2)}@sender.example>`, ''];
  const line = 'x'.repeat(76);
  const lines: string[] = [];
  for (let n = 0; n < size; n += line.length + 2) lines.push(line);
  return [...head, ...lines].join('\r\n');
}
