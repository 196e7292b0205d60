// Test fixture for the ingress tests: a tiny SessionHandler that accepts recipients on
// test.example and collects bodies, a listener factory on 127.0.0.1:0, and a throw-away
// self-signed certificate made with openssl.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { TestContext } from 'node:test';
import { V2_SIGNATURE } from '../../src/ingress/proxy.ts';
import { reply, type SmtpReply } from '../../src/core/reply.ts';
import { startListener, type Listener, type ListenerOptions } from '../../src/ingress/listener.ts';
import type { AuthResult, BodyFacts, ConnectionInfo, MailFromInfo, MessageSink, ProtocolOptions, RcptToInfo, SessionHandler, SessionState } from '../../src/ingress/smtp/types.ts';
import type { Dialog } from '../harness/dial.ts';

export const DOMAIN = 'test.example';

export function protocolOptions(over: Partial<ProtocolOptions> = {}): ProtocolOptions {
  return {
    hostname: 'mx.test',
    banner: 'Mailward',
    implicitTls: false,
    starttls: true,
    auth: false,
    authWithoutTls: false,
    requireAuth: false,
    requireTls: false,
    maxMessageSize: 10 * 1024 * 1024,
    maxRecipients: 100,
    maxLineLength: 512,
    maxBadCommands: 10,
    maxCommands: 1000,
    greetingDelayMs: 0,
    commandTimeoutMs: 30_000,
    dataTimeoutMs: 60_000,
    bareLineEndings: 'reject',
    chunking: true,
    smtputf8: true,
    ...over,
  };
}

export interface Message {
  readonly mail: MailFromInfo;
  readonly rcpts: string[];
  readonly body: Buffer;
  readonly facts: BodyFacts;
}

/** Which handler methods should throw, to test the engine's 451 fallback. */
export type Throwing = 'onConnect' | 'onHelo' | 'onMailFrom' | 'onRcptTo' | 'onDataStart' | 'write' | 'end';

/** Stages whose reply a test may dictate (e.g. a 421), instead of the handler's usual answer. */
export type Stage = 'onConnect' | 'onHelo' | 'onAuth' | 'onMailFrom' | 'onRcptTo' | 'onDataStart' | 'end';
export type Answers = Partial<Record<Stage, SmtpReply>>;

export class TestHandler implements SessionHandler {
  readonly messages: Message[] = [];
  readonly aborts: string[] = [];
  readonly events: Array<{ event: string; detail: Record<string, unknown> }> = [];
  readonly auths: Array<{ mechanism: string; username: string; password: string; authzid: string }> = [];
  resets = 0;
  helo: string | undefined;
  mail: MailFromInfo | undefined;
  rcpts: string[] = [];
  lastState: SessionState | undefined;
  readonly closed: Promise<string>;
  private resolveClosed!: (reason: string) => void;

  constructor(
    readonly conn: ConnectionInfo,
    readonly throwing: ReadonlySet<Throwing> = new Set(),
    readonly connectReply?: SmtpReply,
    readonly answers: Answers = {},
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  private maybeThrow(what: Throwing): void {
    if (this.throwing.has(what)) throw new Error(`test handler: ${what} fails`);
  }

  async onConnect(state: SessionState): Promise<SmtpReply | undefined> {
    this.lastState = state;
    this.maybeThrow('onConnect');
    return this.answers.onConnect ?? this.connectReply;
  }

  async onHelo(_state: SessionState, name: string): Promise<SmtpReply | undefined> {
    this.maybeThrow('onHelo');
    if (this.answers.onHelo) return this.answers.onHelo;
    if (name === 'refused.example') return reply(550, '5.7.1', 'HELO refused');
    this.helo = name;
    return undefined;
  }

  async onAuth(_state: SessionState, mechanism: 'PLAIN' | 'LOGIN', username: string, password: string, authzid: string): Promise<AuthResult> {
    this.auths.push({ mechanism, username, password, authzid });
    if (this.answers.onAuth) return { ok: false, reply: this.answers.onAuth };
    if (username === 'alice' && password === 'correct horse') return { ok: true, login: 'alice' };
    return { ok: false, reply: reply(535, '5.7.8', 'Authentication credentials invalid') };
  }

  async onMailFrom(_state: SessionState, mail: MailFromInfo): Promise<SmtpReply> {
    this.maybeThrow('onMailFrom');
    if (this.answers.onMailFrom) return this.answers.onMailFrom;
    this.mail = mail;
    this.rcpts = [];
    return reply(250, '2.1.0', 'Sender OK');
  }

  async onRcptTo(_state: SessionState, rcpt: RcptToInfo): Promise<SmtpReply> {
    this.maybeThrow('onRcptTo');
    if (this.answers.onRcptTo) return this.answers.onRcptTo;
    if (!rcpt.path.toLowerCase().endsWith(`@${DOMAIN}>`)) return reply(550, '5.1.1', 'User unknown');
    this.rcpts.push(rcpt.path);
    return reply(250, '2.1.5', 'Recipient OK');
  }

  async onDataStart(_state: SessionState): Promise<MessageSink | SmtpReply> {
    this.maybeThrow('onDataStart');
    if (this.answers.onDataStart) return this.answers.onDataStart;
    const parts: Buffer[] = [];
    const mail = this.mail!;
    const rcpts = [...this.rcpts];
    return {
      write: async (chunk: Buffer) => {
        this.maybeThrow('write');
        parts.push(Buffer.from(chunk));
      },
      end: async (facts: BodyFacts) => {
        this.maybeThrow('end');
        if (this.answers.end) return this.answers.end;
        this.messages.push({ mail, rcpts, body: Buffer.concat(parts), facts });
        return reply(250, '2.0.0', `Ok: queued as Q${this.messages.length}`);
      },
      abort: (reason: string) => {
        this.aborts.push(reason);
      },
    };
  }

  onReset(): void {
    this.resets++;
    this.mail = undefined;
    this.rcpts = [];
  }

  onClose(state: SessionState, reason: string): void {
    this.lastState = state;
    this.resolveClosed(reason);
  }

  onEvent(state: SessionState, event: string, detail: Record<string, unknown>): void {
    this.lastState = state;
    this.events.push({ event, detail });
  }
}

export interface Served {
  readonly listener: Listener;
  readonly port: number;
  /** One handler per accepted connection, in order. */
  readonly handlers: TestHandler[];
  readonly listenerEvents: Array<{ event: string; detail: Record<string, unknown> }>;
  /** Waits until the n-th connection's handler exists. */
  handler(n?: number): Promise<TestHandler>;
}

export interface ServeOptions extends Partial<Omit<ListenerOptions, 'protocol' | 'handlerFactory' | 'onEvent'>> {
  readonly protocol?: Partial<ProtocolOptions>;
  readonly throwing?: Throwing[];
  readonly connectReply?: SmtpReply;
  readonly answers?: Answers;
}

export async function serve(t: TestContext, o: ServeOptions = {}): Promise<Served> {
  const handlers: TestHandler[] = [];
  const listenerEvents: Served['listenerEvents'] = [];
  const listener = await startListener({
    name: 'test',
    host: '127.0.0.1',
    port: 0,
    maxConnections: o.maxConnections ?? 100,
    maxConnectionsPerClient: o.maxConnectionsPerClient ?? 100,
    ...(o.proxy ? { proxy: o.proxy } : {}),
    shutdownTimeoutMs: o.shutdownTimeoutMs ?? 2000,
    protocol: protocolOptions(o.protocol),
    handlerFactory: (conn) => {
      const h = new TestHandler(conn, new Set(o.throwing ?? []), o.connectReply, o.answers);
      handlers.push(h);
      return h;
    },
    onEvent: (event, detail) => listenerEvents.push({ event, detail }),
  });
  t.after(() => listener.close());
  return {
    listener,
    port: listener.port,
    handlers,
    listenerEvents,
    async handler(n = 0) {
      for (let i = 0; i < 200 && handlers[n] === undefined; i++) await new Promise((r) => setTimeout(r, 10));
      const h = handlers[n];
      if (!h) throw new Error(`no handler #${n}`);
      return h;
    },
  };
}

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'mailward-ingress-'));
  t.after(() => fs.promises.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A one-day self-signed P-256 certificate for CN=test, as a server SecureContext. */
export function selfSignedContext(dir: string): tls.SecureContext {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=test', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return tls.createSecureContext({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) });
}

// PROXY v2 header builders (proxy-protocol.txt §2.2).
/** Builds a v2 header: command 1 = PROXY, 0 = LOCAL; fam 0x11 TCP4, 0x21 TCP6. */
export function v2(cmd: number, fam: number, addr: Buffer, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(addr.length + tlvs.length);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20 | cmd, fam]), len, addr, tlvs]);
}

export function v4block(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(src).copy(b, 0);
  Buffer.from(dst).copy(b, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

export function v6block(src: string, dst: string, sport: number, dport: number): Buffer {
  const toBytes = (hexGroups: string): Buffer => Buffer.from(hexGroups.replace(/:/g, ''), 'hex');
  const b = Buffer.alloc(36);
  toBytes(src).copy(b, 0);
  toBytes(dst).copy(b, 16);
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(dport, 34);
  return b;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The fake end-of-DATA markers of SMTP smuggling (December 2023 research). */
export const FAKES = ['\n.\n', '\n.\r\n', '\r\n.\n', '\r.\r\n'];
/** The transaction an attacker hides behind a fake end marker. */
export const SMUGGLED = 'MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@test.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nfake\r\n';

/** The body with a fake end marker and a smuggled transaction after it, then the real end. */
export async function sendSmuggling(d: Dialog, fake: string, split: boolean): Promise<void> {
  const payload = `Subject: real\r\n\r\nhello${fake}${SMUGGLED}\r\n.\r\n`;
  if (!split) return d.send(payload);
  // Every byte of the fake marker and of the real one in its own TCP write.
  const at = payload.indexOf(fake);
  d.send(payload.slice(0, at));
  for (const ch of payload.slice(at, at + fake.length)) {
    await sleep(3);
    d.send(ch);
  }
  await sleep(3);
  d.send(payload.slice(at + fake.length, -5));
  for (const ch of '\r\n.\r\n') {
    await sleep(3);
    d.send(ch);
  }
}
