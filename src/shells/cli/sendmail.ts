// `mailward sendmail` (and `sendmail`, `mailq`, `newaliases` by the name it is called as): the
// sendmail(8) entry point for local programs. It submits over the server's local socket, proving
// the caller's uid with a file (ingress/local-submit.ts); it never queues by itself: with the
// server down it exits 75 (EX_TEMPFAIL), which cron and mail(1) report and PHP returns as false
// (docs/decisions/0022-sendmail.md).
import net from 'node:net';
import { closeSync, existsSync, fchmodSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { hostname as osHostname } from 'node:os';
import { loadConfig } from '../../config/load.ts';
import { ConfigError } from '../../config/errors.ts';
import { DataError, EX, UsageError, dataBytes, parseSendmailArgs, prepareMessage, type SendmailArgs } from './sendmail-args.ts';

/** Where a system install puts the socket (RuntimeDirectory=mailward); used without -C when present. */
export const SYSTEM_SOCKET = '/run/mailward/submit.sock';

class Exit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Lines (LF-terminated) from a socket, one at a time. */
class LineReader {
  private buf = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private ended = false;
  constructor(private readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }
  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }
  async line(): Promise<string | undefined> {
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl >= 0) {
        const l = this.buf.subarray(0, nl).toString('utf8').replace(/\r$/, '');
        this.buf = this.buf.subarray(nl + 1);
        return l;
      }
      if (this.ended) return undefined;
      await new Promise<void>((r) => (this.waiting = r));
    }
  }
  /** What was read past the last line (the SMTP greeting may already be here). */
  rest(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }
  /** One SMTP reply (multi-line joined): its code and text. */
  async reply(): Promise<{ code: number; text: string }> {
    const lines: string[] = [];
    for (;;) {
      const l = await this.line();
      if (l === undefined) throw new Exit(EX.TEMPFAIL, `the server closed the connection${lines.length ? ` after: ${lines.join(' ')}` : ''}`);
      lines.push(l);
      if (l[3] !== '-') return { code: Number(l.slice(0, 3)), text: lines.join(' ') };
    }
  }
}

/**
 * The socket to use: -C's config, else the system socket, else ./mailward.yaml's (or the
 * default). A config whose socket is the default one is read here without systemd's
 * RUNTIME_DIRECTORY, so it names dataDir's socket; under the shipped unit the server listens in
 * /run/mailward instead: that one is used when the config's does not exist.
 */
function socketPath(args: SendmailArgs): string {
  if (args.config === undefined && existsSync(SYSTEM_SOCKET)) return SYSTEM_SOCKET;
  const configured = loadConfig(args.config).sendmail.socket;
  return !existsSync(configured) && existsSync(SYSTEM_SOCKET) ? SYSTEM_SOCKET : configured;
}

function connect(file: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(file);
    s.once('connect', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'the mail server is not running' : err.code === 'EACCES' ? 'no permission to reach the socket (see docs/guide/sendmail.md)' : err.message;
      reject(new Exit(EX.TEMPFAIL, `${why} (socket ${file}); the message was NOT sent, try again later`));
    });
  });
}

/** The handshake: prove our uid with a file, learn the login we submit as. */
async function prove(reader: LineReader, socket: net.Socket): Promise<string> {
  const hello = await reader.line();
  const m = hello === undefined ? null : /^MAILWARD-LOCAL 1 ([0-9a-f]{32}) (\/.+)$/.exec(hello);
  if (!m) throw new Exit(EX.TEMPFAIL, `unexpected greeting from the socket: ${JSON.stringify(hello ?? '')}`);
  const file = path.join(m[2]!, m[1]!);
  try {
    // O_EXCL: our own new file. Mode 0644 as the server requires (it runs as its own user and
    // must read it), set with fchmod: every mailward command runs with umask 0027.
    const fd = openSync(file, 'wx', 0o600);
    fchmodSync(fd, 0o644); // PROOF_MODE of src/ingress/local-submit.ts
    writeSync(fd, m[1]!);
    closeSync(fd);
  } catch (err) {
    throw new Exit(EX.TEMPFAIL, `cannot write the identity proof ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  socket.write('PROVE\n');
  const answer = await reader.line();
  if (answer?.startsWith('OK ')) return answer.slice(3);
  const no = /^NO (\d+) (.*)$/.exec(answer ?? '');
  if (no) throw new Exit(Number(no[1]), no[2]!);
  throw new Exit(EX.TEMPFAIL, 'the server closed the connection during the handshake');
}

function readStdin(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.once('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.once('error', reject);
  });
}

/** sysexits for an SMTP refusal: 4xx is temporary; a refused recipient is EX_NOUSER. */
const exitFor = (code: number, stage: string): number => (code >= 400 && code < 500 ? EX.TEMPFAIL : stage === 'RCPT' ? EX.NOUSER : stage === 'DATA' ? EX.DATAERR : EX.UNAVAILABLE);

async function send(args: SendmailArgs): Promise<void> {
  const input = await readStdin();
  const socket = await connect(socketPath(args));
  const reader = new LineReader(socket);
  try {
    const login = await prove(reader, socket);
    const sender = args.sender ?? login;
    const prepared = prepareMessage(input, args, sender, osHostname(), new Date());
    const step = async (stage: string, line: string | Buffer | undefined, want: number): Promise<void> => {
      if (line !== undefined) socket.write(typeof line === 'string' ? `${line}\r\n` : line);
      const r = await reader.reply();
      if (Math.floor(r.code / 100) !== want) throw new Exit(exitFor(r.code, stage), `${stage}: ${r.text}`);
    };
    await step('greeting', undefined, 2);
    await step('EHLO', 'EHLO localhost', 2);
    // An 8-bit body is declared so; RFC 6152.
    const eight = prepared.message.some((b) => b > 127);
    await step('MAIL', `MAIL FROM:<${sender}>${eight ? ' BODY=8BITMIME' : ''}`, 2);
    // Every recipient or none: a partial send would leave the caller unable to tell who got it.
    for (const r of prepared.recipients) await step('RCPT', `RCPT TO:<${r}>`, 2);
    await step('DATA', 'DATA', 3);
    await step('DATA', dataBytes(prepared.message), 2);
    socket.end('QUIT\r\n');
  } finally {
    socket.destroy();
  }
}

/** -bs: SMTP on standard input and output, over the proven connection. */
async function smtpOnStdio(args: SendmailArgs): Promise<void> {
  const socket = await connect(socketPath(args));
  const reader = new LineReader(socket);
  await prove(reader, socket);
  socket.removeAllListeners('data');
  process.stdout.write(reader.rest());
  socket.pipe(process.stdout);
  process.stdin.pipe(socket);
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
}

/** Runs sendmail(8) as `invokedAs` (sendmail, mailq, newaliases); resolves to the exit code. */
export async function runSendmail(argv: readonly string[], invokedAs: string, runCli: (argv: string[]) => Promise<number>): Promise<number> {
  let args: SendmailArgs;
  try {
    args = parseSendmailArgs(argv, invokedAs);
  } catch (err) {
    process.stderr.write(`sendmail: ${(err as Error).message}\n`);
    return err instanceof DataError ? EX.DATAERR : EX.USAGE;
  }
  try {
    if (args.mode === 'newaliases') {
      process.stdout.write('newaliases: nothing to rebuild: Mailward reads aliases from its directory at once (mailward alias add/list)\n');
      return EX.OK;
    }
    if (args.mode === 'mailq') return await runCli(['node', 'mailward', ...(args.config ? ['--config', args.config] : []), 'queue', 'list']);
    if (args.mode === 'smtp') await smtpOnStdio(args);
    else await send(args);
    return EX.OK;
  } catch (err) {
    const code = err instanceof Exit ? err.code : err instanceof DataError ? EX.DATAERR : err instanceof UsageError ? EX.USAGE : err instanceof ConfigError ? EX.USAGE : EX.SOFTWARE;
    process.stderr.write(`sendmail: ${err instanceof Error ? err.message : String(err)}\n`);
    return code;
  }
}
