// A scriptable SMTP sink on loopback for the outbound tests: it plays a remote MX host or a
// smarthost (our own SMTP engine under a recording handler), answers RCPT and end of DATA as the
// test says, can demand STARTTLS and AUTH, and records every message byte for byte.
import tls from 'node:tls';
import net from 'node:net';
import type { TestContext } from 'node:test';
import { Readable } from 'node:stream';
import type { Envelope } from '../../src/queue/envelope.ts';
import type { DeliverableMessage } from '../../src/delivery/transport.ts';
import { reply, type SmtpReply } from '../../src/core/reply.ts';
import { startListener } from '../../src/ingress/listener.ts';
import { createSelfSignedCertificate } from '../../src/ingress/selfsigned.ts';
import type { AuthResult, BodyFacts, MessageSink, ProtocolOptions, SessionHandler, SessionState } from '../../src/ingress/smtp/types.ts';

export interface SinkMessage {
  readonly from: string;
  readonly rcpts: string[];
  readonly body: Buffer;
  readonly secure: boolean;
  readonly login?: string;
  readonly helo?: string;
  readonly facts: BodyFacts;
  /** MAIL FROM carried REQUIRETLS. */
  readonly requireTls: boolean;
}

export interface SinkOptions {
  readonly host?: string;
  readonly port?: number;
  /** TLS material: STARTTLS is offered (or implicit TLS, with `implicitTls`). */
  readonly tls?: tls.SecureContext;
  readonly implicitTls?: boolean;
  /** Demand AUTH with these credentials before MAIL (offered only over TLS). */
  readonly auth?: { readonly user: string; readonly pass: string };
  /** The reply to RCPT TO of `address`, its `n`-th time (1-based) at this sink; undefined: 250. */
  readonly rcpt?: (address: string, n: number) => SmtpReply | undefined;
  /** The reply at end of DATA (a promise: the sink waits for it); undefined: 250. */
  readonly data?: (m: SinkMessage) => SmtpReply | undefined | Promise<SmtpReply | undefined>;
  readonly name?: string;
  /** Offer REQUIRETLS (RFC 8689) after STARTTLS. */
  readonly requireTls?: boolean;
}

export interface Sink {
  readonly host: string;
  readonly port: number;
  readonly messages: SinkMessage[];
  /** Every RCPT address seen, in order, with the reply code given. */
  readonly rcpts: Array<{ address: string; code: number }>;
  readonly auths: Array<{ user: string; pass: string }>;
  connections: number;
  waitForMessages(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  close(): Promise<void>;
}

const strip = (path: string): string => path.replace(/^<|>$/g, '');

/** A certificate for "localhost" (and 127.0.0.1, ::1), as PEM and as a context. */
export function localhostCert(): { certPem: string; keyPem: string; context: tls.SecureContext } {
  const { certPem, keyPem } = createSelfSignedCertificate('localhost');
  return { certPem, keyPem, context: tls.createSecureContext({ cert: certPem, key: keyPem }) };
}

export async function startSink(t: TestContext | undefined, o: SinkOptions = {}): Promise<Sink> {
  const messages: SinkMessage[] = [];
  const rcpts: Sink['rcpts'] = [];
  const auths: Sink['auths'] = [];
  const seen = new Map<string, number>();
  let waiters: Array<() => void> = [];
  const protocol: ProtocolOptions = {
    hostname: o.name ?? 'sink.test',
    banner: 'sink',
    ...(o.tls ? { tls: o.tls } : {}),
    implicitTls: o.implicitTls ?? false,
    starttls: o.tls !== undefined && !o.implicitTls,
    auth: o.auth !== undefined,
    authWithoutTls: false,
    requireAuth: o.auth !== undefined,
    requireTls: false,
    maxMessageSize: 20 * 1024 * 1024,
    maxRecipients: 1000,
    maxLineLength: 4096,
    maxBadCommands: 10,
    maxCommands: 1000,
    greetingDelayMs: 0,
    commandTimeoutMs: 30_000,
    dataTimeoutMs: 30_000,
    // Record what arrives as it is: the tests check that only CRLF arrives.
    bareLineEndings: 'accept',
    chunking: true,
    smtputf8: true,
    requireTlsExtension: o.requireTls === true,
  };
  const sink: Sink = {
    host: o.host ?? '127.0.0.1',
    port: 0,
    messages,
    rcpts,
    auths,
    connections: 0,
    async waitForMessages(n, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > end) throw new Error(`sink: timed out waiting for ${n} message(s), have ${messages.length}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 50);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return messages;
    },
    close: async () => undefined,
  };
  const handler = (): SessionHandler => {
    let from = '';
    let requireTls = false;
    let accepted: string[] = [];
    let login: string | undefined;
    return {
      onConnect: async () => {
        sink.connections++;
        return undefined;
      },
      onHelo: async () => undefined,
      onAuth: async (_s, _m, user, pass): Promise<AuthResult> => {
        auths.push({ user, pass });
        if (o.auth && user === o.auth.user && pass === o.auth.pass) {
          login = user;
          return { ok: true, login: user };
        }
        return { ok: false, reply: reply(535, '5.7.8', 'Authentication credentials invalid') };
      },
      onMailFrom: async (_s, mail) => {
        from = strip(mail.path);
        requireTls = mail.requireTls === true;
        accepted = [];
        return reply(250, '2.1.0', 'Ok');
      },
      onRcptTo: async (_s, r) => {
        const address = strip(r.path);
        const n = (seen.get(address) ?? 0) + 1;
        seen.set(address, n);
        const answer = o.rcpt?.(address, n) ?? reply(250, '2.1.5', 'Ok');
        rcpts.push({ address, code: answer.code });
        if (answer.code < 300) accepted.push(address);
        return answer;
      },
      onDataStart: async (s: SessionState): Promise<MessageSink> => {
        const parts: Buffer[] = [];
        const f = from;
        const to = [...accepted];
        const rt = requireTls;
        return {
          write: (chunk) => void parts.push(Buffer.from(chunk)),
          abort: () => undefined,
          end: async (facts) => {
            const m: SinkMessage = { from: f, rcpts: to, body: Buffer.concat(parts), secure: s.secure, requireTls: rt, ...(login ? { login } : {}), ...(s.helo ? { helo: s.helo } : {}), facts };
            const answer = await o.data?.(m);
            if (answer && answer.code >= 300) return answer;
            messages.push(m);
            const w = waiters;
            waiters = [];
            w.forEach((fn) => fn());
            return answer ?? reply(250, '2.0.0', `Ok: queued as sink${messages.length}`);
          },
        };
      },
      onReset: () => undefined,
      onClose: () => undefined,
      onEvent: () => undefined,
    };
  };
  const listener = await startListener({
    name: 'sink',
    host: sink.host,
    port: o.port ?? 0,
    protocol,
    maxConnections: 100,
    maxConnectionsPerClient: 100,
    shutdownTimeoutMs: 500,
    handlerFactory: handler,
    onEvent: () => undefined,
  });
  (sink as { port: number }).port = listener.port;
  let closed = false;
  sink.close = async () => {
    if (closed) return;
    closed = true;
    await listener.close();
  };
  t?.after(() => sink.close());
  return sink;
}

/** A port on `host` where nothing listens (connections are refused). */
export async function deadPort(host = '127.0.0.1'): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, host, resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** True when the bytes hold a CR or LF that is not part of a CRLF pair. */
export function hasBareLineEnding(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0d && b[i + 1] !== 0x0a) return true;
    if (b[i] === 0x0a && b[i - 1] !== 0x0d) return true;
  }
  return false;
}

/** A small queued message from a local user to `to`, as the MX transport is handed it. */
export function outboundMessage(to: string, id = '1k8fn2k50f5t0l8a1', o: { requireTls?: boolean; headers?: string } = {}): DeliverableMessage {
  const bytes = Buffer.from(`From: a@example.org\r\n${o.headers ?? ''}Subject: t\r\n\r\nhello\r\n`);
  const envelope: Envelope = {
    id,
    receivedAt: Date.now(),
    mailFrom: 'a@example.org',
    recipients: [{ address: to, mailbox: to, transport: 'remote' }],
    client: { address: '192.0.2.1', listener: 'submission', sessionId: 's', login: 'a@example.org' },
    smtputf8: false,
    body: '8BITMIME',
    ...(o.requireTls ? { requireTls: true } : {}),
    size: bytes.length,
  };
  return { envelope, body: () => Readable.from([bytes]), recovered: false };
}

/** A TCP proxy to `port` that hides STARTTLS: removed from EHLO replies, the command garbled (as a downgrading middlebox does). */
export async function startStrippingProxy(t: TestContext, port: number): Promise<number> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    socks.add(client).add(upstream);
    client.on('data', (d: Buffer) => upstream.write(Buffer.from(d.toString('latin1').replace(/STARTTLS/gi, 'XXXXXXXX'), 'latin1')));
    upstream.on('data', (d: Buffer) => client.write(Buffer.from(d.toString('latin1').replace(/250([ -])STARTTLS/gi, '250$1XXXXXXXX'), 'latin1')));
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of socks) s.destroy();
    return new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  return (srv.address() as net.AddressInfo).port;
}

