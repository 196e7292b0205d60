// The /usr/sbin/sendmail command line as cron, PHP mail() and mail(1) use it, and the message
// preparation it implies (-t recipients from the header, Bcc removed, -i dot handling, -F name).
// Pure: no I/O here, so every flag is tested apart from the socket.
import { randomBytes } from 'node:crypto';
import { parseMailboxList } from '../../core/mailbox-list.ts';

/** sysexits(3) codes, the contract of sendmail(8) with its callers. */
export const EX = { OK: 0, USAGE: 64, DATAERR: 65, NOUSER: 67, UNAVAILABLE: 69, SOFTWARE: 70, TEMPFAIL: 75, NOPERM: 77 } as const;

export type Mode = 'send' | 'smtp' | 'mailq' | 'newaliases';

export interface SendmailArgs {
  readonly mode: Mode;
  readonly fromHeaders: boolean;
  /** -i / -oi: a line with a single "." is not the end of the message. */
  readonly ignoreDots: boolean;
  readonly sender?: string;
  readonly fullName?: string;
  readonly config?: string;
  readonly recipients: readonly string[];
}

export class UsageError extends Error {}
/** The message itself cannot be used (EX_DATAERR). */
export class DataError extends Error {}

/** Options sendmail(8) takes that change nothing here (delivery mode, error mode, verbosity). */
const IGNORED_WITH_VALUE = new Set(['-B', '-N', '-R', '-V', '-X', '-O', '-h', '-L']);

export function parseSendmailArgs(argv: readonly string[], invokedAs: string): SendmailArgs {
  let mode: Mode = invokedAs === 'mailq' ? 'mailq' : invokedAs === 'newaliases' ? 'newaliases' : 'send';
  let fromHeaders = false;
  let ignoreDots = false;
  let sender: string | undefined;
  let fullName: string | undefined;
  let config: string | undefined;
  const recipients: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (flag: string): string => {
      if (a.length > flag.length) return a.slice(flag.length);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (a === '--') {
      recipients.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      recipients.push(a);
      continue;
    }
    if (a === '-t') fromHeaders = true;
    else if (a === '-i' || a === '-oi') ignoreDots = true;
    else if (a.startsWith('-f') || a.startsWith('-r')) sender = value(a.slice(0, 2));
    else if (a.startsWith('-F')) fullName = value('-F');
    else if (a.startsWith('-C')) config = value('-C');
    else if (a === '-bs') mode = 'smtp';
    else if (a === '-bp') mode = 'mailq';
    else if (a === '-bi') mode = 'newaliases';
    else if (a === '-bm') mode = 'send';
    else if (a === '-v' || a === '-n' || a === '-U' || a.startsWith('-o')) continue;
    else if (IGNORED_WITH_VALUE.has(a.slice(0, 2))) value(a.slice(0, 2));
    else throw new UsageError(`unsupported option ${a} (supported: -t -i -oi -f -r -F -C -bs -bp -bi -bm)`);
  }
  if (mode === 'send' && !fromHeaders && recipients.length === 0) throw new UsageError('no recipients: give addresses or -t');
  return { mode, fromHeaders, ignoreDots, recipients, ...(sender !== undefined ? { sender } : {}), ...(fullName !== undefined ? { fullName } : {}), ...(config !== undefined ? { config } : {}) };
}

export interface Prepared {
  /** The message with CRLF line endings, ready for DATA (not yet dot-stuffed). */
  readonly message: Buffer;
  readonly recipients: readonly string[];
}

/** Splits the header block into fields (continuation lines kept with their field). */
function headerFields(head: string): string[] {
  const out: string[] = [];
  for (const line of head.split('\r\n')) {
    if (/^[ \t]/.test(line) && out.length > 0) out[out.length - 1] += `\r\n${line}`;
    else out.push(line);
  }
  return out;
}

const fieldName = (f: string): string => f.slice(0, Math.max(0, f.indexOf(':'))).trim().toLowerCase();

/**
 * Turns standard input into the message: ends it at a lone "." unless -i, CRLF line endings,
 * recipients from To/Cc/Bcc with -t (Bcc removed: it must not reach the recipients, RFC 5322
 * §3.6.3), and From, Date and Message-ID added when missing (RFC 5322 §3.6).
 */
export function prepareMessage(input: Buffer, args: SendmailArgs, envelopeSender: string, hostname: string, now: Date): Prepared {
  let text = input.toString('latin1').replace(/\r?\n/g, '\r\n');
  if (!args.ignoreDots) {
    const m = /(^|\r\n)\.\r\n/.exec(text) ?? /(^|\r\n)\.$/.exec(text);
    if (m) text = text.slice(0, m.index + m[1]!.length);
  }
  const split = text.indexOf('\r\n\r\n');
  const startsWithBody = text.startsWith('\r\n');
  const head = startsWithBody ? '' : split >= 0 ? text.slice(0, split) : text;
  const body = startsWithBody ? text.slice(2) : split >= 0 ? text.slice(split + 4) : '';
  let fields = head === '' ? [] : headerFields(head);
  const recipients = [...args.recipients];
  if (args.fromHeaders) {
    for (const f of fields) {
      const name = fieldName(f);
      if (name !== 'to' && name !== 'cc' && name !== 'bcc') continue;
      const list = parseMailboxList(Buffer.from(f.slice(f.indexOf(':') + 1).replace(/\r\n/g, ''), 'latin1').toString('utf8'));
      if (!list.ok) throw new DataError(`-t: cannot read the ${name} header: ${list.error}`);
      for (const { address } of list.mailboxes) if (!recipients.includes(address)) recipients.push(address);
    }
    fields = fields.filter((f) => fieldName(f) !== 'bcc');
    if (recipients.length === 0) throw new DataError('-t: no recipients in the To, Cc or Bcc header');
  }
  const has = (n: string): boolean => fields.some((f) => fieldName(f) === n);
  const added: string[] = [];
  if (!has('from')) added.push(`From: ${args.fullName ? `"${args.fullName.replace(/["\\\r\n]/g, '')}" ` : ''}<${envelopeSender}>`);
  if (!has('date')) added.push(`Date: ${now.toUTCString().replace('GMT', '+0000')}`);
  if (!has('message-id')) added.push(`Message-ID: <${now.getTime().toString(36)}.${randomBytes(6).toString('hex')}@${hostname}>`);
  const all = [...fields, ...added];
  return { message: Buffer.from(`${all.join('\r\n')}\r\n\r\n${body}`, 'latin1'), recipients };
}

/** Dot-stuffing for DATA (RFC 5321 §4.5.2) and the end marker. */
export function dataBytes(message: Buffer): Buffer {
  let t = message.toString('latin1');
  if (!t.endsWith('\r\n')) t += '\r\n';
  return Buffer.from(`${t.replace(/(^|\r\n)\./g, '$1..')}.\r\n`, 'latin1');
}
