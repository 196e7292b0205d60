// Bounces and delay warnings: RFC 3464 delivery status notifications (multipart/report with a
// human part, a message/delivery-status part and the original headers), sent from the null
// sender to the envelope sender, queued through the spool like any message. Never for a message
// with a null sender (RFC 5321 §4.5.5), nor for one marked noBounce (spam, failed authentication:
// its sender is likely forged, and a bounce would be backscatter).
import { onlyForwarded } from '../core/relay-reason.ts';
import { queueGenerated, type SpoolBegin } from '../queue/generated.ts';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../observe/log.ts';
import type { Envelope, EnvelopeRecipient, RecipientState } from '../queue/envelope.ts';
import type { DeliverableMessage } from './transport.ts';
import { readHeaderBlock } from './headers.ts';

/** The `client.listener` of messages this server writes itself (bounces). */
export const BOUNCE_LISTENER = 'bounce';

export interface FailedRecipient {
  readonly index: number;
  /** The recipient's new state: bounced (a failure notice) or deferred (a delay warning). */
  readonly state: RecipientState;
  /** The host whose reply this was, if another server gave it. */
  readonly remoteMta?: string;
}

export type DsnKind = 'failed' | 'delayed';

export interface DsnInput {
  readonly kind: DsnKind;
  readonly envelope: Envelope;
  /** The original message's header block, as stored. */
  readonly headers: Buffer;
  readonly recipients: readonly FailedRecipient[];
  /** This server's name (Reporting-MTA, MAILER-DAEMON's domain). */
  readonly reportingMta: string;
  readonly date: Date;
  readonly messageId: string;
  readonly boundary: string;
  /** For delay warnings: when the recipients will be given up (RFC 3464 §2.3.9). */
  readonly willRetryUntil?: Date;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');

/** RFC 5322 §3.3 date-time, in UTC. */
export function rfc5322Date(d: Date): string {
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} +0000`;
}

const TLS_SECURITY_DETAILS: ReadonlySet<string> = new Set(['5', '10', '30']);

/**
 * The RFC 3463 status of a reply: its enhanced code when it has one of the right class, else a
 * generic one. A temporary failure that ran out of time is 5.4.7 (delivery time expired).
 */
export function dsnStatus(kind: DsnKind, reply: string | undefined): string {
  const m = /^\d{3}[ -]([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(reply ?? '');
  if (kind === 'delayed') return m && m[1] === '4' ? `4.${m[2]}.${m[3]}` : '4.0.0';
  if (m && m[1] === '5') return `5.${m[2]}.${m[3]}`;
  // A TLS requirement that was never met stays a security status in the bounce (RFC 8689 §6:
  // 5.7.10 encryption needed, 5.7.30 REQUIRETLS support required; 5.7.5 a failed TLS policy).
  if (m && m[1] === '4' && m[2] === '7' && TLS_SECURITY_DETAILS.has(m[3]!)) return `5.7.${m[3]}`;
  if (/^4/.test(reply ?? '')) return '5.4.7';
  return '5.0.0';
}

const hasEightBit = (s: string | Buffer): boolean => (typeof s === 'string' ? /[^\x00-\x7f]/.test(s) : s.some((b) => b > 0x7f));
/** Header and field values come from envelopes and remote replies: never let them add a line. */
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, ' ');

/** The whole DSN message (CRLF line endings). */
export function buildDsn(d: DsnInput): Buffer {
  const env = d.envelope;
  const utf8 = env.smtputf8 || hasEightBit(env.mailFrom) || env.recipients.some((r) => hasEightBit(r.address) || hasEightBit(r.mailbox ?? ''));
  const failed = d.kind === 'failed';
  const lines: string[] = [];
  const human: string[] = [
    `This is the mail system at host ${d.reportingMta}.`,
    '',
    failed
      ? 'Your message could not be delivered to one or more recipients. It is attached below (headers only). The reasons are given for each recipient:'
      : `Your message could not be delivered to one or more recipients yet. The mail system will keep trying${d.willRetryUntil ? ` until ${rfc5322Date(d.willRetryUntil)}` : ''}; you need not send it again.`,
    '',
  ];
  const fields: string[] = [`Reporting-MTA: dns; ${d.reportingMta}`, `X-Mailward-Queue-ID: ${env.id}`, `Arrival-Date: ${rfc5322Date(new Date(env.receivedAt))}`];
  for (const f of d.recipients) {
    const r: EnvelopeRecipient = env.recipients[f.index]!;
    const target = r.mailbox ?? r.address;
    const reply = f.state.lastReply;
    human.push(`<${oneLine(target)}>${f.remoteMta ? `: host ${oneLine(f.remoteMta)} said` : ''}: ${oneLine(reply ?? 'no reason recorded')}`);
    fields.push('');
    // RFC 3464 §2.3.1: the address as the client gave it, when delivery went elsewhere (an alias).
    if (r.address !== target) fields.push(`Original-Recipient: rfc822; ${oneLine(r.address)}`);
    fields.push(`Final-Recipient: rfc822; ${oneLine(target)}`);
    fields.push(`Action: ${failed ? 'failed' : 'delayed'}`);
    fields.push(`Status: ${dsnStatus(d.kind, reply)}`);
    if (f.remoteMta) fields.push(`Remote-MTA: dns; ${oneLine(f.remoteMta)}`);
    if (reply) fields.push(`Diagnostic-Code: smtp; ${oneLine(reply)}`);
    if (f.state.updatedAt !== undefined) fields.push(`Last-Attempt-Date: ${rfc5322Date(new Date(f.state.updatedAt))}`);
    if (!failed && d.willRetryUntil) fields.push(`Will-Retry-Until: ${rfc5322Date(d.willRetryUntil)}`);
  }
  const headersText = d.headers.toString(utf8 ? 'utf8' : 'latin1').replace(/\r?\n/g, '\r\n').replace(/(\r\n)+$/, '');
  const eightBitHeaders = hasEightBit(d.headers);
  // RFC 6533 §6: internationalized messages get the global variants of the report parts.
  const statusType = utf8 ? 'message/global-delivery-status' : 'message/delivery-status';
  const headersType = utf8 ? 'message/global-headers' : 'text/rfc822-headers';
  lines.push(
    `Date: ${rfc5322Date(d.date)}`,
    `From: Mail Delivery System <MAILER-DAEMON@${d.reportingMta}>`,
    `To: <${oneLine(env.mailFrom)}>`,
    `Subject: ${failed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)'}`,
    `Message-ID: <${d.messageId}>`,
    // RFC 3834 §5: an automatic reply, which auto-responders must not answer.
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${d.boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${d.boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${hasEightBit(human.join('')) ? '8bit' : '7bit'}`,
    '',
    ...human,
    '',
    `--${d.boundary}`,
    'Content-Description: Delivery report',
    `Content-Type: ${statusType}`,
    ...(utf8 ? ['Content-Transfer-Encoding: 8bit'] : []),
    '',
    ...fields,
    '',
    `--${d.boundary}`,
    `Content-Description: ${failed ? 'Undelivered' : 'Delayed'} Message Headers`,
    `Content-Type: ${headersType}`,
    ...(eightBitHeaders ? ['Content-Transfer-Encoding: 8bit'] : []),
    '',
    headersText,
    '',
    `--${d.boundary}--`,
    '',
  );
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

/** Why no notice may go to this message's sender; undefined when one may. */
export function suppressReason(env: Envelope): string | undefined {
  // RFC 5321 §4.5.5 / §6.1: never answer a notification with another one (mail loops).
  if (env.mailFrom === '') return 'null sender';
  if (env.noBounce !== undefined) return env.noBounce;
  // Forwarded mail from a client that did not log in bounces only to a sender its own domain
  // vouched for (SPF pass or its DKIM signature): any other may be forged, and a bounce through
  // our smarthost would be backscatter.
  if (env.client.login === undefined && onlyForwarded(env.relayReason) && env.senderVerified !== true) return 'forwarded mail from an unverified sender';
  return undefined;
}

export interface BouncerOptions {
  /** Where notices are queued (the spool). */
  readonly spool: SpoolBegin;
  /** This server's name. */
  readonly hostname: string;
  /** Where a notice to `address` goes: local mailboxes and/or remote, as the directory says. */
  readonly routeSender: (address: string) => EnvelopeRecipient[];
  /** How long a message may stay queued (for Will-Retry-Until). */
  readonly maxAgeMs: number;
  /** Send a delay warning once a recipient has waited this long (undefined: never). */
  readonly delayWarningAfterMs?: number;
  readonly log: Logger;
  readonly clock?: () => number;
}

export class Bouncer {
  readonly #o: BouncerOptions;

  constructor(opts: BouncerOptions) {
    this.#o = opts;
  }

  get delayWarningAfterMs(): number | undefined {
    return this.#o.delayWarningAfterMs;
  }

  /**
   * Queues a notice about `recipients` of `msg`. Resolves the notice's queue id, or undefined
   * when none may or can be sent (logged). Rejects when it could not be queued: the caller must
   * then not record the recipients as final, or the notice would be lost.
   */
  async notify(kind: DsnKind, msg: DeliverableMessage, recipients: readonly FailedRecipient[]): Promise<string | undefined> {
    const env = msg.envelope;
    const log = this.#o.log;
    const suppressed = suppressReason(env);
    if (suppressed !== undefined) {
      log.info({ event: 'bounce-suppressed', queueId: env.id, kind, reason: suppressed, recipients: recipients.length }, `no ${kind === 'failed' ? 'bounce' : 'delay warning'}: ${suppressed}`);
      return undefined;
    }
    const to = this.#o.routeSender(env.mailFrom);
    if (to.length === 0) {
      log.warn({ event: 'bounce-undeliverable', queueId: env.id, kind, to: env.mailFrom }, 'the sender is a local address without a mailbox; no notice sent');
      return undefined;
    }
    const now = new Date((this.#o.clock ?? Date.now)());
    const headers = await readHeaderBlock(msg.body());
    const rand = randomBytes(9).toString('base64url');
    const bytes = buildDsn({
      kind,
      envelope: env,
      headers,
      recipients,
      reportingMta: this.#o.hostname,
      date: now,
      messageId: `${env.id}.dsn.${rand}@${this.#o.hostname}`,
      boundary: `${env.id}.${rand}/${this.#o.hostname}`,
      ...(kind === 'delayed' ? { willRetryUntil: new Date(env.receivedAt + this.#o.maxAgeMs) } : {}),
    });
    const id = await queueGenerated(
      this.#o.spool,
      {
        mailFrom: '',
        recipients: to,
        client: { address: '127.0.0.1', listener: BOUNCE_LISTENER, sessionId: `dsn-${env.id}` },
        smtputf8: env.smtputf8 || hasEightBit(env.mailFrom),
        body: hasEightBit(bytes) ? '8BITMIME' : '7BIT',
        noBounce: 'delivery status notification',
        // RFC 8689 §5 (non-delivery of REQUIRETLS mail): the notice carries the original header,
        // so it is protected as the message was — it goes with REQUIRETLS too, quoting the headers
        // only (as if RET=HDRS, whatever was asked). A local sender gets it in the mailbox; a remote
        // one only over verified TLS to a host offering REQUIRETLS (else it is deferred, and at
        // maxAge dropped: a notice never bounces).
        ...(env.requireTls === true ? { requireTls: true } : {}),
      },
      bytes,
    );
    log.info({ event: kind === 'failed' ? 'bounce-queued' : 'delay-warning-queued', queueId: id, original: env.id, to: env.mailFrom, recipients: recipients.length, ...(env.requireTls === true ? { requireTls: true } : {}) }, kind === 'failed' ? 'bounce queued' : 'delay warning queued');
    return id;
  }
}
