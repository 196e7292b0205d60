// Probes any SMTP server from the outside for open relaying: a battery of relay attempts in the
// address forms that have fooled relay checks, each on a fresh connection that stops after RCPT
// (DATA is never sent, so no attempt can carry a message). The library behind `mailward relay-test`.
import net from 'node:net';
import tls from 'node:tls';
import { isValidDomain, parseMailbox } from '../core/address.ts';
import { proxyHeader } from '../ingress/proxy-header.ts';

export type TlsMode = 'none' | 'starttls' | 'implicit';

export interface RelayTestOptions {
  readonly host: string;
  readonly port: number;
  /** none: plain SMTP (STARTTLS only when `auth` is given and offered); starttls: always; implicit: TLS from the first byte (RFC 8314). */
  readonly tls?: TlsMode;
  /** Send a PROXY header first, claiming `source` as the client address. */
  readonly proxy?: { readonly version: 1 | 2; readonly source: string };
  /** Also run the authenticated attempts with this login. */
  readonly auth?: { readonly user: string; readonly password: string };
  /** Envelope sender of the unauthenticated attempts (default relay-test@<foreignDomain>). */
  readonly from?: string;
  /** The domain that is not the server's (default example.net, reserved by RFC 2606). */
  readonly foreignDomain?: string;
  /** The server's own mail domain (default: from the greeting's host name). */
  readonly localDomain?: string;
  /** Name given in EHLO (default relay-test.invalid). */
  readonly helo?: string;
  /** Limit for connecting and for each reply, in ms (default 10000). */
  readonly timeoutMs?: number;
  /** Verify the server's certificate. Default: only when credentials are sent. */
  readonly verifyTls?: boolean;
}

/** A reply as received: its code and its lines without the code prefix. */
export interface ProbeReply {
  readonly code: number;
  readonly lines: readonly string[];
}

export interface AttemptSpec {
  /** Short stable name, e.g. "percent-hack". */
  readonly name: string;
  readonly description: string;
  /** The argument after "MAIL FROM:", sent as is. */
  readonly mailFrom: string;
  /** The argument after "RCPT TO:", sent as is. */
  readonly rcptTo: string;
  readonly authenticated: boolean;
  /** relay: may mail leave for a foreign domain? sender: may the login use someone else's address? */
  readonly purpose: 'relay' | 'sender';
  /** The path names the server's own domain: a 250 could also be a local catch-all. */
  readonly viaLocalDomain: boolean;
}

/**
 * refused / relayed / deferred / error: unauthenticated relay attempts (relayed = open relay).
 * allowed: an authenticated login may relay (expected; not an open relay).
 * sender-refused / sender-accepted: may a login use another user's address as sender (informative).
 */
export type Verdict = 'refused' | 'relayed' | 'deferred' | 'error' | 'allowed' | 'sender-refused' | 'sender-accepted';

export interface AttemptResult extends AttemptSpec {
  readonly verdict: Verdict;
  /** The step whose reply decided the verdict. */
  readonly stage: 'connect' | 'tls' | 'helo' | 'auth' | 'mail' | 'rcpt';
  readonly mail?: ProbeReply;
  readonly rcpt?: ProbeReply;
  /** The reply that ended the attempt before MAIL, if any (greeting, EHLO, STARTTLS, AUTH). */
  readonly early?: ProbeReply;
  readonly note?: string;
}

export interface ServerInfo {
  readonly greeting: ProbeReply;
  /** The host name the greeting gives, when it gives one. */
  readonly hostname?: string;
  /** EHLO keywords before any STARTTLS (upper case). */
  readonly extensions: readonly string[];
  /** AUTH was advertised on a connection without TLS (RFC 4954 §4 advises against it). */
  readonly authWithoutTls: boolean;
}

export interface RelayTestReport {
  readonly target: string;
  readonly server: ServerInfo;
  readonly localDomain: string;
  readonly foreignDomain: string;
  readonly from: string;
  readonly tls: TlsMode;
  readonly proxy?: { readonly version: 1 | 2; readonly source: string };
  readonly login?: string;
  readonly attempts: readonly AttemptResult[];
  /** Unauthenticated relay attempts only. */
  readonly counts: { readonly refused: number; readonly relayed: number; readonly inconclusive: number };
  readonly openRelay: boolean;
  /** 0 no relay possible, 1 open relay, 2 the probe could not run (or nothing was answered definitively). */
  readonly exitCode: 0 | 1 | 2;
  /** The final RESULT line. */
  readonly result: string;
  /** Why the authenticated part could not run, when it could not. */
  readonly authProblem?: string;
}

/** An operator's error (bad option, unreachable server): the message names the value and the fix. */
export class RelayTestError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'RelayTestError';
  }
}

export const DEFAULT_FOREIGN_DOMAIN = 'example.net';
export const DEFAULT_HELO = 'relay-test.invalid';
export const DEFAULT_TIMEOUT_MS = 10_000;
// RFC 5737 / RFC 3849 documentation addresses: foreign hosts that exist nowhere.
const FOREIGN_IPV4 = '192.0.2.7';
const FOREIGN_IPV6 = '2001:db8::7';
/** Longest reply we read (RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets; we allow many lines). */
const MAX_REPLY_BYTES = 64 * 1024;

/** A reply as one line for tables and notes: "554 5.7.1 Relay access denied". */
export function replyLine(r: ProbeReply): string {
  return `${r.code} ${r.lines.join(' / ')}`.trim();
}

const is2xx = (r: ProbeReply | undefined): boolean => r !== undefined && r.code >= 200 && r.code < 300;
const is4xx = (r: ProbeReply | undefined): boolean => r !== undefined && r.code >= 400 && r.code < 500;
const is5xx = (r: ProbeReply | undefined): boolean => r !== undefined && r.code >= 500 && r.code < 600;

/**
 * The server's mail domain from its greeting host name: "mx.example.org" → "example.org"; a
 * two-label name is taken as it is. Undefined when the name cannot tell (one label, a literal).
 */
export function localDomainFromHostname(hostname: string | undefined): string | undefined {
  if (!hostname || !isValidDomain(hostname) || net.isIP(hostname)) return undefined;
  const labels = hostname.toLowerCase().replace(/\.$/, '').split('.');
  if (labels.length < 2) return undefined;
  return labels.length === 2 ? labels.join('.') : labels.slice(1).join('.');
}

/** The unauthenticated battery, then (with a login) the authenticated attempts. */
export function buildBattery(o: { local: string; foreign: string; from: string; login?: string }): AttemptSpec[] {
  const { local: L, foreign: F } = o;
  const from = `<${o.from}>`;
  const relay = (name: string, description: string, rcptTo: string, viaLocalDomain = false, mailFrom = from): AttemptSpec => ({
    name,
    description,
    mailFrom,
    rcptTo,
    authenticated: false,
    purpose: 'relay',
    viaLocalDomain,
  });
  const list: AttemptSpec[] = [
    relay('plain', 'a foreign recipient', `<victim@${F}>`),
    // The %-hack and !-paths: old MTAs rewrote these into a foreign address after the relay check.
    relay('percent-hack', '%-hack through the local domain', `<victim%${F}@${L}>`, true),
    relay('quoted-at', 'quoted local part holding @', `<"victim@${F}"@${L}>`, true),
    relay('quoted-percent', 'quoted local part holding %', `<"victim%${F}"@${L}>`, true),
    relay('bang-path', 'UUCP bang path through the local domain', `<${F}!victim@${L}>`, true),
    relay('double-at', 'two @, local domain last', `<victim@${F}@${L}>`, true),
    // RFC 5321 §4.1.1.3 / Appendix C: source routes must be accepted but ignored.
    relay('source-route', 'source route via the local domain', `<@${L}:victim@${F}>`, true),
    relay('source-route-2', 'source route with two hops', `<@${L},@${L}:victim@${F}>`, true),
    // RFC 5321 §4.1.3: address literals of foreign hosts.
    relay('ipv4-literal', 'IPv4 address literal of a foreign host', `<victim@[${FOREIGN_IPV4}]>`),
    relay('ipv6-literal', 'IPv6 address literal of a foreign host', `<victim@[IPv6:${FOREIGN_IPV6}]>`),
    relay('trailing-dot', 'foreign domain with the root dot', `<victim@${F}.>`),
    relay('upper-case', 'foreign address in upper case', `<VICTIM@${F.toUpperCase()}>`),
    relay('no-brackets', 'foreign address without angle brackets', `victim@${F}`),
    relay('extra-spaces', 'spaces inside the angle brackets', `< victim@${F} >`),
    relay('local-then-foreign', 'two @, foreign domain last', `<victim@${L}@${F}>`, true),
    relay('quoted-local', 'quoted local part, foreign domain', `<"victim"@${F}>`),
    relay('spoofed-sender', 'local sender address, foreign recipient', `<victim@${F}>`, false, `<postmaster@${L}>`),
  ];
  if (o.login !== undefined) {
    const own = parseMailbox(o.login);
    const sender = own.ok ? own.mailbox.address : o.from;
    const other = sender.toLowerCase() === `someone-else@${L}` ? `someone-other@${L}` : `someone-else@${L}`;
    list.push(
      { name: 'auth-relay', description: 'logged in, foreign recipient', mailFrom: `<${sender}>`, rcptTo: `<victim@${F}>`, authenticated: true, purpose: 'relay', viaLocalDomain: false },
      { name: 'auth-spoofed-sender', description: "logged in, another user's address as sender", mailFrom: `<${other}>`, rcptTo: `<victim@${F}>`, authenticated: true, purpose: 'sender', viaLocalDomain: false },
    );
  }
  return list;
}

// ---- a small SMTP client -------------------------------------------------------------------

class ProbeClosed extends Error {}

interface ConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly implicitTls: boolean;
  readonly proxy?: { readonly version: 1 | 2; readonly source: string };
  readonly tls: tls.ConnectionOptions;
}

/** One SMTP connection: writes command lines, reads whole (multi-line) replies with a time limit. */
class SmtpProbe {
  private buf: Buffer = Buffer.alloc(0);
  private closed = false;
  private failure: string | undefined;
  private wake: (() => void) | undefined;
  secure = false;

  private constructor(
    private socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    this.attach(socket);
  }

  static async open(o: ConnectOptions): Promise<SmtpProbe> {
    const socket = await connectTcp(o.host, o.port, o.timeoutMs);
    socket.setNoDelay(true);
    if (o.proxy) {
      // proxy-protocol.txt §2: the header is the very first thing on the connection, before
      // any TLS. It claims the given source; the destination is the address we reached.
      const destination = { address: unmap(socket.remoteAddress ?? o.host), port: socket.remotePort ?? o.port };
      socket.write(proxyHeader(o.proxy.version, { address: o.proxy.source, port: socket.localPort ?? 0 }, destination));
    }
    if (!o.implicitTls) return new SmtpProbe(socket, o.timeoutMs);
    const secure = await tlsWrap(socket, o.tls, o.timeoutMs);
    const probe = new SmtpProbe(secure, o.timeoutMs);
    probe.secure = true;
    return probe;
  }

  private attach(s: net.Socket): void {
    s.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.wake?.();
    });
    s.on('error', (err) => {
      this.failure ??= err.message;
      this.closed = true;
      this.wake?.();
    });
    s.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  /** Parses one complete reply from the buffer (RFC 5321 §4.2.1: "ddd-" continues, "ddd " ends). */
  private take(): ProbeReply | undefined {
    let pos = 0;
    const lines: string[] = [];
    let code = 0;
    for (;;) {
      const nl = this.buf.indexOf(0x0a, pos);
      if (nl === -1) {
        if (this.buf.length > MAX_REPLY_BYTES) throw new Error(`reply longer than ${MAX_REPLY_BYTES} bytes`);
        return undefined;
      }
      const line = this.buf.toString('utf8', pos, nl).replace(/\r$/, '');
      pos = nl + 1;
      const m = /^([2-5][0-9][0-9])([ -]|$)(.*)$/.exec(line);
      if (!m) throw new Error(`not an SMTP reply: ${JSON.stringify(line.slice(0, 80))}`);
      if (lines.length === 0) code = Number(m[1]);
      lines.push(m[3] ?? '');
      if (m[2] !== '-') {
        this.buf = this.buf.subarray(pos);
        return { code, lines };
      }
    }
  }

  async read(): Promise<ProbeReply> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const r = this.take();
      if (r) return r;
      if (this.closed) throw new ProbeClosed(this.failure ? `connection failed: ${this.failure}` : 'the server closed the connection');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${this.timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  async command(line: string): Promise<ProbeReply> {
    if (this.closed) throw new ProbeClosed('the server closed the connection');
    this.socket.write(`${line}\r\n`);
    return this.read();
  }

  /** RFC 3207 §4: after "220 Ready" the client starts TLS; anything buffered before is dropped. */
  async startTls(options: tls.ConnectionOptions): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    plain.on('error', () => undefined);
    this.buf = Buffer.alloc(0);
    this.socket = await tlsWrap(plain, options, this.timeoutMs);
    this.attach(this.socket);
    this.secure = true;
  }

  /** Ends politely without waiting long: RSET then QUIT, replies read if they come quickly. */
  async abort(): Promise<void> {
    for (const line of ['RSET', 'QUIT']) {
      if (this.closed) break;
      try {
        await this.command(line);
      } catch {
        break;
      }
    }
    this.close();
  }

  close(): void {
    this.socket.destroy();
  }
}

function connectTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no TCP connection within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onError);
      resolve(s);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    s.once('error', onError);
  });
}

function unmap(address: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice(7) : address;
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function tlsWrap(socket: net.Socket, options: tls.ConnectionOptions, timeoutMs: number): Promise<tls.TLSSocket> {
  return withTimeout(
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ ...options, socket }, () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    }),
    timeoutMs,
    `no TLS handshake within ${timeoutMs} ms`,
  ).catch((err: unknown) => {
    socket.destroy();
    throw err;
  });
}

// Node's codes for a certificate that could not be verified (tls.TLSSocket#authorizationError).
const CERT_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/;

function message(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  if (code && CERT_ERRORS.test(code)) return `${err.message} (the certificate could not be verified; for a test server with a self-signed certificate pass --insecure)`;
  return err.message;
}

/** EHLO keywords of a 250 reply (first line is the host name). */
function keywords(r: ProbeReply): string[] {
  return r.lines.slice(1).map((l) => l.trim().toUpperCase());
}

function authMechanisms(ext: readonly string[]): string[] {
  const line = ext.find((e) => e === 'AUTH' || e.startsWith('AUTH ') || e.startsWith('AUTH='));
  return line ? line.slice(5).split(/\s+/).filter(Boolean) : [];
}

// ---- one attempt ---------------------------------------------------------------------------

interface Context {
  readonly connect: ConnectOptions;
  readonly helo: string;
  readonly tls: TlsMode;
  readonly auth?: { readonly user: string; readonly password: string };
}

type Stage = AttemptResult['stage'];

async function hello(p: SmtpProbe, name: string): Promise<ProbeReply> {
  const r = await p.command(`EHLO ${name}`);
  // RFC 5321 §4.1.1.1: fall back to HELO when EHLO is not understood.
  if (r.code === 500 || r.code === 502) return p.command(`HELO ${name}`);
  return r;
}

/** AUTH PLAIN (RFC 4616) or LOGIN, whichever the server lists first of the two. */
async function authenticate(p: SmtpProbe, mechanisms: readonly string[], user: string, password: string): Promise<ProbeReply> {
  if (mechanisms.includes('PLAIN') || !mechanisms.includes('LOGIN')) {
    return p.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64')}`);
  }
  let r = await p.command('AUTH LOGIN');
  if (r.code !== 334) return r;
  r = await p.command(Buffer.from(user, 'utf8').toString('base64'));
  if (r.code !== 334) return r;
  return p.command(Buffer.from(password, 'utf8').toString('base64'));
}

/** A refusal before MAIL: 5xx is a refusal, 4xx a deferral, anything else an error. */
function early(spec: AttemptSpec, stage: Stage, r: ProbeReply, what: string): AttemptResult {
  const verdict: Verdict = is5xx(r) ? 'refused' : is4xx(r) ? 'deferred' : 'error';
  return { ...spec, verdict, stage, early: r, note: `${what}: ${replyLine(r)}` };
}

export function judge(spec: AttemptSpec, mail: ProbeReply, rcpt: ProbeReply | undefined): AttemptResult {
  const base = { ...spec, mail, ...(rcpt ? { rcpt } : {}) };
  if (spec.purpose === 'sender') {
    if (is5xx(mail)) return { ...base, verdict: 'sender-refused', stage: 'mail' };
    if (is4xx(mail)) return { ...base, verdict: 'deferred', stage: 'mail' };
    return { ...base, verdict: 'sender-accepted', stage: 'mail', note: 'the login may use an address that is not its own as envelope sender' };
  }
  if (is2xx(rcpt)) {
    const notes: string[] = [];
    if (!is2xx(mail)) notes.push('RCPT was accepted although MAIL was not');
    if (spec.viaLocalDomain && !spec.authenticated) notes.push('the path names the local domain: a catch-all mailbox there would also accept it; check where the server routes it');
    return { ...base, verdict: spec.authenticated ? 'allowed' : 'relayed', stage: 'rcpt', ...(notes.length ? { note: notes.join('; ') } : {}) };
  }
  if (!is2xx(mail)) {
    if (is5xx(mail)) return { ...base, verdict: 'refused', stage: 'mail' };
    if (is4xx(mail)) return { ...base, verdict: 'deferred', stage: 'mail', note: 'MAIL was deferred, so RCPT was never judged' };
    return { ...base, verdict: 'error', stage: 'mail', note: `unexpected reply to MAIL: ${replyLine(mail)}` };
  }
  if (!rcpt) return { ...base, verdict: 'error', stage: 'rcpt', note: 'the connection ended before the RCPT reply' };
  if (is5xx(rcpt)) return { ...base, verdict: 'refused', stage: 'rcpt' };
  if (is4xx(rcpt)) return { ...base, verdict: 'deferred', stage: 'rcpt', note: 'a temporary refusal says nothing about relaying; try again later' };
  return { ...base, verdict: 'error', stage: 'rcpt', note: `unexpected reply to RCPT: ${replyLine(rcpt)}` };
}

async function runAttempt(spec: AttemptSpec, ctx: Context): Promise<AttemptResult> {
  let stage: Stage = 'connect';
  let p: SmtpProbe;
  try {
    p = await SmtpProbe.open(ctx.connect);
  } catch (err) {
    return { ...spec, verdict: 'error', stage, note: `cannot connect: ${message(err)}` };
  }
  try {
    const greeting = await p.read();
    if (greeting.code !== 220) return early(spec, stage, greeting, 'greeting');
    stage = 'helo';
    let ehlo = await hello(p, ctx.helo);
    if (!is2xx(ehlo)) return early(spec, stage, ehlo, 'EHLO/HELO');
    const offersTls = keywords(ehlo).includes('STARTTLS');
    if (!p.secure && (ctx.tls === 'starttls' || (spec.authenticated && offersTls))) {
      stage = 'tls';
      if (!offersTls) return { ...spec, verdict: 'error', stage, note: 'the server does not offer STARTTLS' };
      const r = await p.command('STARTTLS');
      if (r.code !== 220) return early(spec, stage, r, 'STARTTLS');
      await p.startTls(ctx.connect.tls);
      stage = 'helo';
      // RFC 3207 §4.2: forget what was learnt before TLS and ask again.
      ehlo = await hello(p, ctx.helo);
      if (!is2xx(ehlo)) return early(spec, stage, ehlo, 'EHLO after STARTTLS');
    }
    if (spec.authenticated && ctx.auth) {
      stage = 'auth';
      // Never send a password in the clear, whatever the server offers.
      if (!p.secure) return { ...spec, verdict: 'error', stage, note: 'no TLS (the server offers no STARTTLS; use --tls for implicit TLS), so the password was not sent' };
      const mechs = authMechanisms(keywords(ehlo));
      if (mechs.length === 0) return { ...spec, verdict: 'error', stage, note: 'the server does not offer AUTH here' };
      const r = await authenticate(p, mechs, ctx.auth.user, ctx.auth.password);
      if (r.code !== 235) return { ...spec, verdict: 'error', stage, early: r, note: `authentication failed: ${replyLine(r)}` };
    }
    stage = 'mail';
    const mail = await p.command(`MAIL FROM:${spec.mailFrom}`);
    stage = 'rcpt';
    // RCPT is sent even after a refused MAIL: a server that then accepts it is broken enough to report.
    let rcpt: ProbeReply | undefined;
    try {
      rcpt = await p.command(`RCPT TO:${spec.rcptTo}`);
    } catch (err) {
      if (!(err instanceof ProbeClosed)) throw err;
    }
    // Never DATA: the attempt must not carry a message.
    await p.abort();
    return judge(spec, mail, rcpt);
  } catch (err) {
    return { ...spec, verdict: 'error', stage, note: message(err) };
  } finally {
    p.close();
  }
}

/** One look at the server: greeting, EHLO keywords, AUTH before TLS. Throws RelayTestError when unreachable. */
async function probeServer(ctx: Context, target: string): Promise<ServerInfo> {
  let p: SmtpProbe;
  try {
    p = await SmtpProbe.open(ctx.connect);
  } catch (err) {
    throw new RelayTestError(`cannot connect to ${target}: ${message(err)}; check the host and port, and that the server is running${ctx.connect.implicitTls ? ' and speaks implicit TLS' : ''}`);
  }
  try {
    let greeting: ProbeReply;
    try {
      greeting = await p.read();
    } catch (err) {
      const hint = ctx.connect.proxy ? 'the server may not accept PROXY headers from this host' : 'if the server expects a PROXY header, pass --proxy-v1 or --proxy-v2; for implicit TLS pass --tls';
      throw new RelayTestError(`${target} sent no greeting (${message(err)}); ${hint}`);
    }
    const first = greeting.lines[0]?.split(/\s+/)[0];
    const hostname = first && isValidDomain(first) ? first : undefined;
    let extensions: string[] = [];
    if (greeting.code === 220) {
      try {
        const ehlo = await hello(p, ctx.helo);
        if (is2xx(ehlo)) extensions = keywords(ehlo);
      } catch {
        // The attempts will show what the server does; the look is informative.
      }
    }
    await p.abort();
    return { greeting, ...(hostname ? { hostname } : {}), extensions, authWithoutTls: !p.secure && authMechanisms(extensions).length > 0 };
  } finally {
    p.close();
  }
}

function checkOptions(o: RelayTestOptions): void {
  if (!o.host) throw new RelayTestError('no host given; write the target as HOST:PORT, e.g. mx.example.org:25');
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new RelayTestError(`port ${o.port} is not in 1..65535; write the target as HOST:PORT, e.g. mx.example.org:25`);
  if (o.proxy && !net.isIP(o.proxy.source)) throw new RelayTestError(`--proxy-v${o.proxy.version} ${JSON.stringify(o.proxy.source)} is not an IP address; give the client address the header should claim, e.g. 203.0.113.9`);
  if (o.timeoutMs !== undefined && !(Number.isInteger(o.timeoutMs) && o.timeoutMs > 0)) throw new RelayTestError(`--timeout ${String(o.timeoutMs)} is not a positive whole number of milliseconds; e.g. --timeout 10000`);
  for (const [flag, d] of [['--to-domain', o.foreignDomain], ['--local-domain', o.localDomain]] as const) {
    if (d !== undefined && !isValidDomain(d)) throw new RelayTestError(`${flag} ${JSON.stringify(d)} is not a domain name; write e.g. example.net`);
  }
  if (o.from !== undefined && !parseMailbox(o.from).ok) throw new RelayTestError(`--from ${JSON.stringify(o.from)} is not a mail address; write e.g. relay-test@example.net`);
  if (o.helo !== undefined && !/^[\x21-\x7e]+$/.test(o.helo)) throw new RelayTestError(`--helo ${JSON.stringify(o.helo)} must be one word of printable ASCII; write e.g. client.example.net`);
  if (o.auth && /[\r\n]/.test(o.auth.user)) throw new RelayTestError('--auth: the login must not contain line breaks');
}

function summarise(attempts: readonly AttemptResult[], withAuth: boolean): Pick<RelayTestReport, 'counts' | 'openRelay' | 'exitCode' | 'result' | 'authProblem'> {
  const unauth = attempts.filter((a) => !a.authenticated);
  const relayed = unauth.filter((a) => a.verdict === 'relayed').length;
  const refused = unauth.filter((a) => a.verdict === 'refused').length;
  const inconclusive = unauth.filter((a) => a.verdict === 'deferred' || a.verdict === 'error').length;
  const counts = { refused, relayed, inconclusive };
  const failed = withAuth ? attempts.find((a) => a.authenticated && a.verdict === 'error') : undefined;
  const authProblem = failed ? `authenticated attempts could not run: ${failed.note ?? 'error'}` : undefined;
  const extra = authProblem ? { authProblem } : {};
  if (relayed > 0) return { counts, openRelay: true, exitCode: 1, result: `RESULT: OPEN RELAY — ${relayed} attempt(s) accepted`, ...extra };
  if (refused === 0) return { counts, openRelay: false, exitCode: 2, result: `RESULT: inconclusive — no attempt was refused or accepted (${inconclusive} inconclusive)`, ...extra };
  return { counts, openRelay: false, exitCode: authProblem ? 2 : 0, result: `RESULT: no relay possible (${refused} attempts refused, ${inconclusive} inconclusive)`, ...extra };
}

/** Runs the whole battery, one fresh connection per attempt, one after the other. */
export async function runRelayTest(o: RelayTestOptions): Promise<RelayTestReport> {
  checkOptions(o);
  const mode = o.tls ?? 'none';
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const target = net.isIPv6(o.host) ? `[${o.host}]:${o.port}` : `${o.host}:${o.port}`;
  // Certificates are checked when a password goes over the connection; an unauthenticated probe
  // sends nothing secret, and many MX hosts use certificates no client could verify.
  const verify = o.verifyTls ?? o.auth !== undefined;
  const tlsOptions: tls.ConnectionOptions = { rejectUnauthorized: verify, minVersion: 'TLSv1.2', ...(net.isIP(o.host) ? {} : { servername: o.host }) };
  const ctx: Context = {
    connect: { host: o.host, port: o.port, timeoutMs, implicitTls: mode === 'implicit', tls: tlsOptions, ...(o.proxy ? { proxy: o.proxy } : {}) },
    helo: o.helo ?? DEFAULT_HELO,
    tls: mode,
    ...(o.auth ? { auth: o.auth } : {}),
  };
  const server = await probeServer(ctx, target);
  const foreignDomain = (o.foreignDomain ?? DEFAULT_FOREIGN_DOMAIN).toLowerCase().replace(/\.$/, '');
  const localDomain = (o.localDomain ?? localDomainFromHostname(server.hostname))?.toLowerCase().replace(/\.$/, '');
  if (!localDomain) {
    throw new RelayTestError(`cannot tell the server's mail domain from its greeting ${JSON.stringify(replyLine(server.greeting))}; pass it with --local-domain, e.g. --local-domain example.org`);
  }
  if (localDomain === foreignDomain) {
    throw new RelayTestError(`--to-domain ${foreignDomain} is the server's own domain; pass a domain the server does not receive mail for, e.g. --to-domain example.net`);
  }
  const from = o.from ?? `relay-test@${foreignDomain}`;
  const battery = buildBattery({ local: localDomain, foreign: foreignDomain, from, ...(o.auth ? { login: o.auth.user } : {}) });
  const attempts: AttemptResult[] = [];
  for (const spec of battery) attempts.push(await runAttempt(spec, ctx));
  return {
    target,
    server,
    localDomain,
    foreignDomain,
    from,
    tls: mode,
    ...(o.proxy ? { proxy: o.proxy } : {}),
    ...(o.auth ? { login: o.auth.user } : {}),
    attempts,
    ...summarise(attempts, o.auth !== undefined),
  };
}
