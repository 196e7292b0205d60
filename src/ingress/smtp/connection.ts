// The server side of one SMTP connection: the RFC 5321 state machine with PIPELINING (RFC 2920),
// STARTTLS (RFC 3207), AUTH (RFC 4954), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
// ENHANCEDSTATUSCODES (RFC 2034) and CHUNKING (RFC 3030). Policy is the SessionHandler's.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { formatReply, isPositive, reply, type SmtpReply } from '../../core/reply.ts';
import { forbiddenCharacter } from '../../core/address.ts';
import { V2_SIGNATURE } from '../proxy.ts';
import { hasNonAscii, parseBdatArgs, parsePathAndParams, splitCommand } from './command.ts';
import { DataDecoder, LineEndingTracker } from './framing.ts';
// After the decoder: a "." after a bare line ending is body text, never an end marker.
import { LineEndingNormaliser } from '../../core/line-endings.ts';
import { InputQueue } from './input.ts';
import { checkMailParams } from './mail-params.ts';
import { R } from './replies.ts';
import { collectCredentials } from './sasl.ts';
import { HANDSHAKE_TIMEOUT_MS, upgradeToTls } from './tls.ts';
import type { AuthResult, BodyFacts, ConnectionInfo, MailFromInfo, MessageSink, ProtocolOptions, SessionHandler, SessionState } from './types.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Unread input above this is not read from the socket until the engine catches up. */
const INPUT_HIGH_WATER = 256 * 1024;
/** Pending replies above this are written out even while more commands are queued. */
const OUTPUT_BATCH_MAX = 64 * 1024;
/** RFC 4954 §4: AUTH response lines may be up to 12288 octets. */
const AUTH_LINE_LIMIT = 12288;
/** How long a closed connection may linger half-open before it is destroyed. */
const LINGER_MS = 5000;
/** Commands of other protocols: a browser or proxy abused to talk to us (cross-protocol attack). */
const NON_SMTP_VERBS = new Set(['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'CONNECT', 'PATCH', 'TRACE', 'USER', 'PASS']);

const EOF = Symbol('eof');
const TOO_LONG = Symbol('too-long');

interface Transaction {
  readonly mail: MailFromInfo;
  attempted: number;
  accepted: number;
  /** Set once the first BDAT chunk was taken (DATA cannot follow). */
  bdat: boolean;
  /** An earlier BDAT of this transaction failed: refuse further chunks (RFC 3030 §2). */
  bdatFailed: boolean;
  sink: MessageSink | undefined;
  size: number;
  tracker: LineEndingTracker | undefined;
  /** BDAT under bareLineEndings: normalise (its state spans chunks). */
  normaliser: LineEndingNormaliser | undefined;
  failure: Failure | undefined;
}

type Failure = 'size' | 'bare' | 'handler';

const FAILURE_REPLY: Record<Failure, SmtpReply> = { size: R.messageTooBig, bare: R.bareLineEnding, handler: R.tempFailure };

/**
 * The greeting and the EHLO replies in wire form, built once per listener's options (shared by
 * all its connections) rather than per connection. The EHLO reply depends on the options and on
 * whether the session is under TLS, so there are two.
 */
interface ListenerWire {
  readonly greeting: string;
  readonly ehlo: { plain?: string; secure?: string };
}
const listenerWire = new WeakMap<ProtocolOptions, ListenerWire>();

function wireFor(opts: ProtocolOptions): ListenerWire {
  let w = listenerWire.get(opts);
  if (!w) {
    const banner = opts.banner ? ` ${opts.banner}` : '';
    w = { greeting: formatReply(reply(220, undefined, `${opts.hostname} ESMTP${banner}`)), ehlo: {} };
    listenerWire.set(opts, w);
  }
  return w;
}

function isSink(x: MessageSink | SmtpReply): x is MessageSink {
  return typeof (x as MessageSink).write === 'function';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A running SMTP session over one socket. */
export class SmtpConnection {
  /** Resolves with the reason once the connection is over and `onClose` was called. */
  readonly done: Promise<string>;

  private socket: Socket;
  private readonly input = new InputQueue(INPUT_HIGH_WATER);
  private readonly st: Mutable<SessionState>;
  private out = '';
  private tx: Transaction | undefined;
  private badCommands = 0;
  private commands = 0;
  private readonly idleTimer: NodeJS.Timeout;
  private dataTimer: NodeJS.Timeout | undefined;
  private dataActive = false;
  /** Waiting for client input (the idle time-out only runs then). */
  private waiting = false;
  /** Waiting for the next command with nothing in flight (shutdown may cut in). */
  private waitingForCommand = false;
  private closing = false;
  private closeReason = '';
  private shuttingDown = false;
  private discardingLine = false;
  private readonly closedSignal: Promise<void>;
  private signalClosed!: () => void;

  constructor(
    socket: Socket,
    conn: ConnectionInfo,
    private readonly opts: ProtocolOptions,
    private readonly handler: SessionHandler,
  ) {
    this.socket = socket;
    this.st = { conn, secure: false, esmtp: false, ...(conn.localLogin !== undefined ? { login: conn.localLogin } : {}) };
    if (socket instanceof TLSSocket) this.noteTls(socket);
    this.closedSignal = new Promise((resolve) => (this.signalClosed = resolve));
    socket.on('error', this.onSocketError);
    this.idleTimer = setTimeout(this.onIdle, opts.commandTimeoutMs);
    this.idleTimer.unref();
    this.input.attach(socket);
    this.done = this.run();
  }

  /** The session state the handler sees. */
  get state(): SessionState {
    return this.st;
  }

  /** True while a command, handler call or message transfer is in progress. */
  get busy(): boolean {
    return !this.closing && !this.waitingForCommand;
  }

  /** Ends the session: at once with 421 4.3.2 when idle, otherwise after the command in flight. */
  shutdown(): void {
    if (this.closing) return;
    this.shuttingDown = true;
    if (this.waitingForCommand) this.terminate(R.shuttingDown, 'shutdown');
  }

  /** Drops the connection without further ado (a bounded shutdown ran out of time). */
  destroy(reason = 'destroyed'): void {
    this.markClosed(reason);
    this.input.terminate();
    this.socket.destroy();
  }

  // ---- main loop ----------------------------------------------------------------------------

  private async run(): Promise<string> {
    try {
      if (await this.greet()) {
        while (!this.closing) {
          if (this.shuttingDown) {
            this.terminate(R.shuttingDown, 'shutdown');
            break;
          }
          if (this.socket.writableNeedDrain) await this.waitDrain();
          const line = await this.readLine(this.opts.maxLineLength, true);
          if (line === EOF) break;
          // Every line counts, over-long ones too: the cap bounds a session's length in lines.
          if (++this.commands > this.opts.maxCommands) {
            this.event('too-many-commands', { count: this.commands });
            this.terminate(R.tooManyCommands, 'too many commands');
            break;
          }
          if (line === TOO_LONG) {
            this.event('line-too-long', { limit: this.opts.maxLineLength });
            this.bad(R.lineTooLong);
            continue;
          }
          await this.command(line);
        }
      }
    } catch (err) {
      // A bug in the engine itself: never leave the client hanging, never crash the process.
      this.event('engine-error', { error: errorText(err) });
      this.terminate(R.tempFailure, 'engine-error');
    }
    return this.finish();
  }

  private async greet(): Promise<boolean> {
    const connect = this.guard('onConnect', () => this.handler.onConnect(this.st), reply(421, '4.3.0', 'Temporary failure, closing connection'));
    let refusal: SmtpReply | undefined;
    if (this.opts.greetingDelayMs > 0) {
      const delay = new Promise<void>((resolve) => setTimeout(resolve, this.opts.greetingDelayMs).unref());
      [refusal] = await Promise.all([connect, delay]);
      if (this.closing) return false;
      // Talking before the greeting: a spam engine that does not wait for replies.
      if (this.input.length > 0) {
        this.event('early-talker', { bytes: this.input.length });
        this.terminate(R.earlyTalker, 'early-talker');
        return false;
      }
    } else {
      // No timer at all when there is no delay: greet as soon as the handler agrees.
      refusal = await connect;
    }
    if (this.closing) return false;
    if (this.input.ended && this.input.length === 0) {
      this.markClosed('client closed before the greeting');
      return false;
    }
    if (refusal) {
      this.terminate(refusal, 'refused at connect');
      return false;
    }
    this.sendWire(wireFor(this.opts).greeting);
    this.flush();
    return true;
  }

  private async finish(): Promise<string> {
    clearTimeout(this.idleTimer);
    if (this.dataTimer) clearTimeout(this.dataTimer);
    this.markClosed(this.input.ended ? 'client closed the connection' : 'closed');
    this.flush();
    this.input.terminate();
    const socket = this.socket;
    if (!socket.destroyed) {
      socket.end();
      // Keep reading (and discarding) until the client closes, so our last reply is not lost
      // to a reset; but never longer than LINGER_MS.
      socket.resume();
      const linger = setTimeout(() => socket.destroy(), LINGER_MS);
      linger.unref();
      socket.once('close', () => clearTimeout(linger));
    }
    const sink = this.tx?.sink;
    this.tx = undefined;
    if (sink) await this.abortSink(sink, this.closeReason);
    try {
      this.handler.onClose(this.st, this.closeReason);
    } catch (err) {
      this.event('handler-error', { method: 'onClose', error: errorText(err) });
    }
    return this.closeReason;
  }

  // ---- I/O ----------------------------------------------------------------------------------

  private readonly onSocketError = (err: NodeJS.ErrnoException): void => {
    // Resets and the like are normal on the Internet: note them, end the session, never throw.
    this.event('socket-error', { code: err.code, error: err.message });
    this.markClosed(`socket error: ${err.code ?? err.message}`);
    this.input.terminate();
  };

  private readonly onIdle = (): void => {
    if (this.closing) return;
    if (!this.waiting) {
      // Busy on our side (handler, TLS, disk): the client is not idle.
      this.idleTimer.refresh();
      return;
    }
    // `buffered` > 0 in the command phase: a line was begun and not finished in time (slowloris).
    this.event('timeout', { phase: this.dataActive ? 'data' : 'command', ms: this.opts.commandTimeoutMs, buffered: this.input.length });
    this.terminate(R.timeout(this.opts.hostname), 'idle timeout');
  };

  private readonly onDataTimeout = (): void => {
    if (!this.dataActive || this.closing) return;
    this.event('timeout', { phase: 'data', ms: this.opts.dataTimeoutMs });
    this.terminate(R.timeout(this.opts.hostname), 'data timeout');
  };

  private startDataTimer(): void {
    this.dataActive = true;
    if (this.dataTimer) {
      this.dataTimer.refresh();
    } else {
      this.dataTimer = setTimeout(this.onDataTimeout, this.opts.dataTimeoutMs);
      this.dataTimer.unref();
    }
  }

  private stopDataTimer(): void {
    this.dataActive = false;
  }

  private send(r: SmtpReply): void {
    this.sendWire(formatReply(r));
  }

  /** Queues a reply already in wire form. */
  private sendWire(wire: string): void {
    this.out += wire;
    // A client pipelining thousands of commands without reading still gets its replies in
    // bounded batches; the main loop then waits for 'drain'.
    if (this.out.length > OUTPUT_BATCH_MAX) this.flush();
  }

  /** Writes all pending replies in one go (RFC 2920 §3.2: batch replies to pipelined commands). */
  private flush(): void {
    if (this.out.length === 0) return;
    const data = this.out;
    this.out = '';
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  /**
   * Waits for more client bytes. `restartClock` restarts the time-out (message bytes: the time-out
   * runs since the last byte, the DATA deadline bounds the whole); a line keeps its clock.
   */
  private async waitInput(forCommand: boolean, restartClock: boolean): Promise<void> {
    this.flush();
    this.waiting = true;
    this.waitingForCommand = forCommand;
    if (restartClock) this.idleTimer.refresh();
    await this.input.wait();
    this.waiting = false;
    this.waitingForCommand = false;
  }

  /** The client is not reading our replies: stop processing its commands until it does. */
  private async waitDrain(): Promise<void> {
    this.waiting = true;
    await Promise.race([new Promise<void>((resolve) => this.socket.once('drain', resolve)), this.closedSignal]);
    this.waiting = false;
  }

  /**
   * Reads one line (terminated by LF, an optional CR before it stripped). Lines longer than
   * `limit` bytes (incl. CRLF) give TOO_LONG once and are discarded up to their end.
   * The whole line must arrive within commandTimeoutMs of the start of this call: the clock is
   * not restarted per byte, so a client trickling one byte at a time (slowloris) cannot hold
   * the session open (RFC 5321 §4.5.3.2.7 asks for at least 5 minutes per command, not more).
   */
  private async readLine(limit: number, forCommand: boolean): Promise<Buffer | typeof EOF | typeof TOO_LONG> {
    this.idleTimer.refresh();
    for (;;) {
      if (this.closing) return EOF;
      const buf = this.input.peek();
      const lf = buf.indexOf(0x0a);
      if (lf !== -1) {
        if (this.discardingLine) {
          this.discardingLine = false;
          this.input.consume(lf + 1);
          continue;
        }
        this.input.consume(lf + 1);
        if (lf + 1 > limit) return TOO_LONG;
        return buf.subarray(0, lf > 0 && buf[lf - 1] === 0x0d ? lf - 1 : lf);
      }
      if (this.discardingLine) {
        this.input.consume(buf.length);
      } else if (buf.length >= limit) {
        this.input.consume(buf.length);
        this.discardingLine = true;
        return TOO_LONG;
      }
      if (this.input.ended) return EOF;
      await this.waitInput(forCommand, false);
    }
  }

  /** Sends a last reply (if any) and closes our side; the main loop then winds down. */
  private terminate(r: SmtpReply | undefined, reason: string): void {
    if (this.closing) return;
    if (r) this.send(r);
    this.flush();
    this.markClosed(reason);
    this.input.terminate();
    if (!this.socket.destroyed) this.socket.end();
  }

  private markClosed(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.closeReason = reason;
    this.signalClosed();
  }

  private event(name: string, detail: Record<string, unknown>): void {
    try {
      this.handler.onEvent(this.st, name, detail);
    } catch {
      // A logging failure must not take the session down.
    }
  }

  /** Runs a handler method; a throw becomes `fallback` (a 4xx, never a success) and an event. */
  private async guard<T>(method: string, fn: () => Promise<T> | T, fallback: T): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.event('handler-error', { method, error: errorText(err) });
      return fallback;
    }
  }

  /**
   * Sends a reply the handler chose. RFC 5321 §3.8: a 421 means the service is closing the
   * transmission channel, so after it the session ends, whatever the stage (a block, an overload,
   * a shutdown decided by the session logic). The one place that rule lives; false when closed.
   */
  private answer(r: SmtpReply, stage: string): boolean {
    if (r.code === 421) {
      this.event('closing-reply', { stage, code: r.code, enhanced: r.enhanced });
      this.terminate(r, `${stage} answered 421`);
      return false;
    }
    this.send(r);
    return true;
  }

  /** Counts a bad command; past the limit the session ends with 421 instead of `r`. */
  private bad(r: SmtpReply): void {
    this.badCommands++;
    if (this.badCommands > this.opts.maxBadCommands) {
      this.event('too-many-errors', { count: this.badCommands });
      this.terminate(R.tooManyErrors, 'too many errors');
      return;
    }
    this.send(r);
  }

  private noteTls(s: TLSSocket): void {
    this.st.secure = true;
    this.st.tlsProtocol = s.getProtocol() ?? undefined;
    this.st.tlsCipher = s.getCipher()?.name;
  }

  // ---- commands -----------------------------------------------------------------------------

  private async command(raw: Buffer): Promise<void> {
    const line = raw.toString('utf8');
    if (this.commands === 1 && this.isProxyHeader(line)) {
      // The listener strips headers from trusted proxies; any other PROXY header is refused.
      this.event('proxy-untrusted', { peer: this.st.conn.remoteAddress });
      this.terminate(R.proxyUntrusted, 'PROXY header from untrusted peer');
      return;
    }
    if (line.length === 0) {
      this.bad(R.emptyLine);
      return;
    }
    const { verb, arg } = splitCommand(line);
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        return this.helo(verb, arg);
      case 'MAIL':
        return this.mail(arg);
      case 'RCPT':
        return this.rcpt(arg);
      case 'DATA':
        return this.data(arg);
      case 'BDAT':
        return this.bdat(arg);
      case 'RSET':
        if (arg) return this.bad(R.noParamsAllowed('RSET'));
        await this.resetTransaction('RSET');
        return this.send(R.ok);
      case 'NOOP':
        return this.send(R.ok);
      case 'QUIT':
        return this.terminate(R.bye, 'quit');
      case 'VRFY':
        // RFC 5321 §3.5.3: 252 when we will not verify; never disclose which users exist.
        return arg ? this.send(R.vrfy) : this.bad(R.syntax('Syntax: VRFY address'));
      case 'EXPN':
        return this.bad(R.notImplemented);
      case 'HELP':
        return this.send(R.help);
      case 'STARTTLS':
        return this.starttls(arg);
      case 'AUTH':
        return this.auth(arg);
      default:
        if (NON_SMTP_VERBS.has(verb)) {
          this.event('non-smtp-command', { verb });
          return this.terminate(R.nonSmtp, 'non-SMTP command');
        }
        this.event('bad-command', { verb: verb.slice(0, 32) });
        return this.bad(R.unknownCommand);
    }
  }

  private isProxyHeader(line: string): boolean {
    if (line.startsWith('PROXY ')) return true;
    // The v2 signature starts "\r\n\r\n\0\r\nQUIT\n": an empty line followed by "\r\n\0".
    return line.length === 0 && this.input.peek().subarray(0, 3).equals(V2_SIGNATURE.subarray(2, 5));
  }

  private tlsOffered(): boolean {
    return this.opts.tls !== undefined && this.opts.starttls && !this.st.secure;
  }

  private requireTlsOffered(): boolean {
    return this.opts.requireTlsExtension === true && this.st.secure;
  }

  private authOffered(): boolean {
    return this.opts.auth && (this.st.secure || this.opts.authWithoutTls);
  }

  /** The EHLO reply in wire form, built at the first EHLO of the listener in this TLS state. */
  private ehloWire(): string {
    const cache = wireFor(this.opts).ehlo;
    if (this.st.secure) return (cache.secure ??= formatReply(this.ehloReply()));
    return (cache.plain ??= formatReply(this.ehloReply()));
  }

  private ehloReply(): SmtpReply {
    const lines = [this.opts.hostname, 'PIPELINING', `SIZE ${this.opts.maxMessageSize}`, '8BITMIME'];
    if (this.opts.smtputf8) lines.push('SMTPUTF8');
    lines.push('ENHANCEDSTATUSCODES');
    if (this.opts.chunking) lines.push('CHUNKING');
    if (this.tlsOffered()) lines.push('STARTTLS');
    // RFC 8689 §4: REQUIRETLS only where TLS protects the session already (after STARTTLS, or implicit TLS).
    if (this.requireTlsOffered()) lines.push('REQUIRETLS');
    if (this.authOffered()) lines.push('AUTH PLAIN LOGIN');
    // RFC 2034 §3: no enhanced code in the EHLO response.
    return reply(250, undefined, lines);
  }

  private async helo(verb: 'HELO' | 'EHLO', arg: string): Promise<void> {
    // Spaces and tabs around the name are tolerated as around a MAIL path (core/address.ts).
    const name = arg.replace(/^[ \t]+|[ \t]+$/g, '');
    if (!name) return this.bad(R.heloSyntax(verb));
    // RFC 5321 §4.1.1.1: the argument is a Domain or an address-literal, neither of which holds a
    // control character. A NUL cuts the name short in C code reading our logs and headers, so it
    // is refused here on every listener, whatever checks the pipeline lists.
    const badChar = forbiddenCharacter(name);
    if (badChar) {
      this.event('bad-helo', { verb, character: badChar });
      return this.bad(R.heloBadName);
    }
    const r = await this.guard('onHelo', () => this.handler.onHelo(this.st, name), R.tempFailure);
    if (this.closing) return;
    if (r && !isPositive(r)) {
      this.answer(r, 'onHelo');
      return;
    }
    // RFC 5321 §4.1.4: EHLO/HELO in a session resets like RSET.
    await this.resetTransaction('new HELO/EHLO');
    this.st.helo = name;
    this.st.esmtp = verb === 'EHLO';
    if (verb === 'EHLO') this.sendWire(this.ehloWire());
    else this.send(reply(250, undefined, this.opts.hostname));
  }

  private async mail(arg: string): Promise<void> {
    if (!this.st.helo) return this.bad(R.needHelo);
    if (this.tx) return this.bad(R.nestedMail);
    if (this.opts.requireTls && !this.st.secure) return this.send(R.mustStartTls);
    if (this.opts.requireAuth && !this.st.login) return this.send(R.authRequired);
    const parsed = parsePathAndParams(arg, 'FROM');
    if (!parsed.ok) return this.bad(R.syntax(parsed.error));
    const { path, params } = parsed.value;
    const checked = checkMailParams(params, { smtputf8: this.opts.smtputf8, chunking: this.opts.chunking, auth: this.authOffered(), requireTls: this.requireTlsOffered(), secure: this.st.secure });
    if (!checked.ok) return checked.bad ? this.bad(checked.reply) : this.send(checked.reply);
    const { body, smtputf8, requireTls, declaredSize } = checked;
    if (!smtputf8 && hasNonAscii(arg)) return this.send(R.utf8Required);
    if (declaredSize !== undefined && declaredSize > this.opts.maxMessageSize) return this.send(R.sizeExceeded);
    const info: MailFromInfo = { path, params, body, smtputf8, ...(requireTls ? { requireTls } : {}), ...(declaredSize === undefined ? {} : { declaredSize }) };
    const r = await this.guard('onMailFrom', () => this.handler.onMailFrom(this.st, info), R.tempFailure);
    if (this.closing) return;
    if (!this.answer(r, 'onMailFrom')) return;
    if (isPositive(r)) {
      this.tx = { mail: info, attempted: 0, accepted: 0, bdat: false, bdatFailed: false, sink: undefined, size: 0, tracker: undefined, normaliser: undefined, failure: undefined };
    }
  }

  private async rcpt(arg: string): Promise<void> {
    const tx = this.tx;
    if (!tx) return this.bad(R.needMail);
    if (tx.bdat) return this.bad(R.badSequence);
    const parsed = parsePathAndParams(arg, 'TO');
    if (!parsed.ok) return this.bad(R.syntax(parsed.error));
    // DSN (NOTIFY, ORCPT) is not offered, so no RCPT parameter is valid.
    if (parsed.value.params.size > 0) return this.bad(R.unsupportedParam);
    if (!tx.mail.smtputf8 && hasNonAscii(arg)) return this.send(R.utf8Required);
    tx.attempted++;
    // RFC 5321 §4.5.3.1.8: 452 for recipients over the limit, the client retries them later.
    if (tx.accepted >= this.opts.maxRecipients) return this.send(R.tooManyRecipients);
    const rcpt = { path: parsed.value.path, params: parsed.value.params };
    const r = await this.guard('onRcptTo', () => this.handler.onRcptTo(this.st, rcpt), R.tempFailure);
    if (this.closing) return;
    if (!this.answer(r, 'onRcptTo')) return;
    if (isPositive(r) && this.tx === tx) tx.accepted++;
  }

  /** Checks common to DATA and BDAT; returns the reply to refuse with, if any. */
  private refuseMessageStart(tx: Transaction | undefined): { reply: SmtpReply; bad: boolean } | undefined {
    if (!tx) return { reply: this.st.helo ? R.needMail : R.needHelo, bad: true };
    if (tx.attempted === 0) return { reply: R.needRcpt, bad: true };
    // RFC 2920 §3.1: all recipients refused → 554 to the pipelined DATA.
    if (tx.accepted === 0) return { reply: R.noValidRecipients, bad: false };
    return undefined;
  }

  private async data(arg: string): Promise<void> {
    if (arg) return this.bad(R.noParamsAllowed('DATA'));
    const tx = this.tx;
    const refused = this.refuseMessageStart(tx);
    if (refused) return refused.bad ? this.bad(refused.reply) : this.send(refused.reply);
    if (!tx) return;
    if (tx.bdat) return this.bad(R.mixedDataBdat);
    if (tx.mail.body === 'BINARYMIME') return this.bad(R.binaryNeedsBdat);
    const s = await this.guard('onDataStart', () => this.handler.onDataStart(this.st), R.tempFailure);
    if (this.closing) return;
    if (!isSink(s)) {
      if (!this.answer(s, 'onDataStart')) return;
      return this.resetTransaction('DATA refused');
    }
    tx.sink = s;
    this.send(R.startData);
    await this.receiveData(tx, s);
  }

  /** Streams a DATA body into the sink until <CRLF>.<CRLF> (RFC 5321 §4.1.1.4). */
  private async receiveData(tx: Transaction, sink: MessageSink): Promise<void> {
    this.startDataTimer();
    const dec = new DataDecoder();
    const max = this.opts.maxMessageSize;
    // Only <CRLF>.<CRLF> ends DATA whatever the mode (the decoder); a bare CR or LF then either
    // refuses the message or becomes a CRLF before the sink sees it (SMTP smuggling).
    const rejectBare = this.opts.bareLineEndings === 'reject';
    const norm = this.opts.bareLineEndings === 'normalise' ? new LineEndingNormaliser() : undefined;
    for (;;) {
      const buf = this.input.peek();
      if (buf.length === 0) {
        if (this.input.ended || this.closing) {
          this.stopDataTimer();
          return; // finish() aborts the sink
        }
        await this.waitInput(false, true);
        continue;
      }
      const r = dec.decode(buf);
      this.input.consume(r.consumed);
      if (tx.failure === undefined) {
        let parts = r.parts;
        if (norm) {
          parts = parts.flatMap((p) => norm.push(p));
          if (r.done) parts.push(...norm.end());
        }
        let n = 0;
        for (const p of parts) n += p.length;
        if (tx.size + n > max) tx.failure = 'size';
        else if (rejectBare && (dec.bareCr || dec.bareLf)) tx.failure = 'bare';
        else if (n > 0) {
          tx.size += n;
          const chunk = parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
          try {
            await sink.write(chunk);
          } catch (err) {
            this.event('handler-error', { method: 'sink.write', error: errorText(err) });
            tx.failure = 'handler';
          }
        }
      }
      if (r.done) break;
    }
    this.stopDataTimer();
    const facts: BodyFacts = { size: tx.size, bareCr: dec.bareCr, bareLf: dec.bareLf, chunked: false };
    await this.endMessage(tx, sink, facts);
  }

  /** Ends a message: the sink's reply, or the failure reply after aborting the sink. */
  private async endMessage(tx: Transaction, sink: MessageSink, facts: BodyFacts): Promise<void> {
    tx.sink = undefined;
    let r: SmtpReply;
    if (tx.failure) {
      this.event('message-refused', { reason: tx.failure, size: facts.size, bareCr: facts.bareCr, bareLf: facts.bareLf });
      await this.abortSink(sink, tx.failure === 'size' ? 'message too big' : tx.failure === 'bare' ? 'bare CR or LF' : 'handler error');
      r = FAILURE_REPLY[tx.failure];
    } else {
      r = await this.guard('sink.end', () => sink.end(facts), R.tempFailure);
    }
    if (this.closing) return;
    if (!this.answer(r, 'sink.end')) return;
    await this.resetTransaction('end of message');
  }

  private async abortSink(sink: MessageSink, reason: string): Promise<void> {
    try {
      await sink.abort(reason);
    } catch (err) {
      this.event('handler-error', { method: 'sink.abort', error: errorText(err) });
    }
  }

  /** Forgets the transaction (aborting a BDAT message in progress) and tells the handler. */
  private async resetTransaction(why: string): Promise<void> {
    const sink = this.tx?.sink;
    this.tx = undefined;
    this.stopDataTimer();
    if (sink) await this.abortSink(sink, why);
    try {
      this.handler.onReset(this.st);
    } catch (err) {
      this.event('handler-error', { method: 'onReset', error: errorText(err) });
    }
  }

  /** RFC 3030: BDAT <size> [LAST]; the chunk follows the command line, exactly <size> bytes. */
  private async bdat(arg: string): Promise<void> {
    const a = parseBdatArgs(arg);
    if (!a) {
      // Without a size we cannot tell where the chunk ends: resynchronising would mean reading
      // message bytes as commands, so the connection ends.
      this.event('bad-command', { verb: 'BDAT', reason: 'unparsable size' });
      this.send(R.bdatSyntax);
      return this.terminate(undefined, 'BDAT syntax error');
    }
    const tx = this.tx;
    // Every refusal still consumes the chunk so its bytes are never taken for commands.
    if (!this.opts.chunking) {
      if (!(await this.discardChunk(a.size))) return;
      return this.bad(R.notImplemented);
    }
    const refused = this.refuseMessageStart(tx);
    if (refused || !tx) {
      if (!(await this.discardChunk(a.size))) return;
      if (refused) return refused.bad ? this.bad(refused.reply) : this.send(refused.reply);
      return;
    }
    if (tx.bdatFailed) {
      if (!(await this.discardChunk(a.size))) return;
      this.bad(R.bdatAfterFailure);
      if (a.last) await this.resetTransaction('end of failed BDAT transaction');
      return;
    }
    if (!tx.bdat) {
      const s = await this.guard('onDataStart', () => this.handler.onDataStart(this.st), R.tempFailure);
      if (this.closing) return;
      if (!isSink(s)) {
        if (!(await this.discardChunk(a.size))) return;
        if (!this.answer(s, 'onDataStart')) return;
        tx.bdatFailed = true;
        if (a.last) await this.resetTransaction('BDAT refused');
        return;
      }
      tx.bdat = true;
      tx.sink = s;
      tx.tracker = new LineEndingTracker();
      // Bare line endings are legitimate in BINARYMIME bodies only (RFC 3030 §3).
      if (this.opts.bareLineEndings === 'normalise' && tx.mail.body !== 'BINARYMIME') tx.normaliser = new LineEndingNormaliser();
      this.startDataTimer();
    }
    const sink = tx.sink;
    const tracker = tx.tracker;
    if (!sink || !tracker) return;
    const max = this.opts.maxMessageSize;
    // Bare line endings are legitimate in BINARYMIME bodies only.
    const rejectBare = this.opts.bareLineEndings === 'reject' && tx.mail.body !== 'BINARYMIME';
    const norm = tx.normaliser;
    const take = async (bytes: Buffer): Promise<void> => {
      if (tx.failure !== undefined) return;
      if (tx.size + bytes.length > max) tx.failure = 'size';
      else if (rejectBare && (tracker.bareCr || tracker.bareLf)) tx.failure = 'bare';
      else if (bytes.length > 0) {
        tx.size += bytes.length;
        try {
          await sink.write(bytes);
        } catch (err) {
          this.event('handler-error', { method: 'sink.write', error: errorText(err) });
          tx.failure = 'handler';
        }
      }
    };
    const complete = await this.readChunk(a.size, async (part) => {
      tracker.scan(part);
      if (tx.failure !== undefined) return;
      await take(norm ? Buffer.concat(norm.push(part)) : part);
    });
    if (!complete) return; // connection gone; finish() aborts the sink
    if (a.last) {
      tracker.finish();
      if (norm) await take(Buffer.concat(norm.end()));
    }
    if (tx.failure === undefined && rejectBare && tracker.bareCr) tx.failure = 'bare';
    if (tx.failure !== undefined) {
      // RFC 3030 §2: a failed chunk fails the transaction; later chunks get 503.
      tx.bdatFailed = true;
      this.stopDataTimer();
      await this.endMessage(tx, sink, this.bdatFacts(tx, tracker));
      if (!a.last && !this.closing) {
        // endMessage reset the transaction; keep a failed shell so further chunks get 503.
        this.tx = { ...tx, bdatFailed: true, sink: undefined };
      }
      return;
    }
    if (!a.last) return this.send(reply(250, '2.0.0', `${a.size} octets received`));
    this.stopDataTimer();
    await this.endMessage(tx, sink, this.bdatFacts(tx, tracker));
  }

  private bdatFacts(tx: Transaction, tracker: LineEndingTracker): BodyFacts {
    return { size: tx.size, bareCr: tracker.bareCr, bareLf: tracker.bareLf, chunked: true };
  }

  /** Reads exactly `n` bytes, handing them on in pieces; false when the connection ended first. */
  private async readChunk(n: number, onBytes: (b: Buffer) => Promise<void>): Promise<boolean> {
    let remaining = n;
    while (remaining > 0) {
      const buf = this.input.peek();
      if (buf.length === 0) {
        if (this.input.ended || this.closing) return false;
        await this.waitInput(false, true);
        continue;
      }
      const take = Math.min(remaining, buf.length);
      const part = take === buf.length ? buf : buf.subarray(0, take);
      this.input.consume(take);
      remaining -= take;
      await onBytes(part);
    }
    return true;
  }

  private async discardChunk(n: number): Promise<boolean> {
    const active = this.dataActive;
    if (!active) this.startDataTimer();
    const ok = await this.readChunk(n, async () => undefined);
    if (!active) this.stopDataTimer();
    return ok;
  }

  private async starttls(arg: string): Promise<void> {
    const ctx = this.opts.tls;
    if (this.st.secure) return this.bad(R.tlsActive);
    if (!ctx || !this.opts.starttls) return this.bad(R.notImplemented);
    if (arg) return this.bad(R.noParamsAllowed('STARTTLS'));
    // RFC 3207 §4.2 / CVE-2011-0411: whatever the client pipelined after STARTTLS was sent in
    // clear text and must not be executed after the handshake. Drop it.
    let dropped = this.input.discard();
    if (this.input.ended) {
      // The client half-closed after STARTTLS: no handshake can ever arrive on this socket, so
      // do not hold the connection until the handshake time-out.
      this.terminate(undefined, 'client closed before the TLS handshake');
      return;
    }
    this.send(R.readyTls);
    this.flush();
    this.input.detach();
    const plain = this.socket;
    for (let c = plain.read() as Buffer | null; c !== null; c = plain.read() as Buffer | null) dropped += c.length;
    if (dropped > 0) this.event('starttls-injection', { bytes: dropped });
    let secure: TLSSocket;
    try {
      secure = await upgradeToTls(plain, ctx, Math.min(this.opts.commandTimeoutMs, HANDSHAKE_TIMEOUT_MS));
    } catch (err) {
      this.event('tls-error', { error: errorText(err) });
      this.destroy('TLS handshake failed');
      return;
    }
    this.socket = secure;
    secure.on('error', this.onSocketError);
    this.input.attach(secure);
    // RFC 3207 §4.2: discard all knowledge obtained from the client before TLS.
    await this.resetTransaction('STARTTLS');
    this.st.helo = undefined;
    this.st.esmtp = false;
    this.st.login = undefined;
    this.noteTls(secure);
    this.event('tls', { protocol: this.st.tlsProtocol, cipher: this.st.tlsCipher });
  }

  private async auth(arg: string): Promise<void> {
    if (!this.opts.auth) return this.bad(R.authNotOffered);
    // RFC 4954 §4 / §6: 538 when the mechanism needs an encrypted connection.
    if (!this.st.secure && !this.opts.authWithoutTls) return this.send(R.encryptionRequired);
    if (!this.st.esmtp) return this.bad(R.authNeedsEhlo);
    if (this.st.login !== undefined) return this.bad(R.alreadyAuthenticated);
    if (this.tx) return this.bad(R.authInTransaction);
    const parts = arg.split(' ');
    const mech = (parts[0] ?? '').toUpperCase();
    if (!mech || parts.length > 2) return this.bad(R.syntax('Syntax: AUTH mechanism [initial-response]'));
    if (mech !== 'PLAIN' && mech !== 'LOGIN') return this.bad(R.unknownMechanism);
    const outcome = await collectCredentials(
      {
        challenge: async (prompt) => {
          this.send(reply(334, undefined, prompt));
          const line = await this.readLine(Math.max(AUTH_LINE_LIMIT, this.opts.maxLineLength), false);
          if (line === EOF) return null;
          if (line === TOO_LONG) return R.lineTooLong;
          return line.toString('utf8');
        },
      },
      mech,
      parts[1],
    );
    if (outcome.kind === 'gone') return;
    if (outcome.kind === 'reply') return this.bad(outcome.reply);
    const result = await this.guard<AuthResult>(
      'onAuth',
      () => this.handler.onAuth(this.st, outcome.mechanism, outcome.username, outcome.password, outcome.authzid),
      { ok: false, reply: R.tempFailure },
    );
    if (this.closing) return;
    if (result.ok) {
      this.st.login = result.login;
      this.send(R.authOk);
    } else {
      this.answer(result.reply, 'onAuth');
    }
  }
}

/** Runs the server side of an SMTP dialogue on `socket` (plain, or an established TLS socket). */
export function startSmtpSession(socket: Socket, conn: ConnectionInfo, opts: ProtocolOptions, handler: SessionHandler): SmtpConnection {
  return new SmtpConnection(socket, conn, opts, handler);
}
