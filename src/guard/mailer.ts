// The postmaster alert as a queued message: an AlertMailer over anything with the spool's
// `begin(envelope)` writer. The message is routed through the directory like any local mail
// (postmaster is usually an alias) and never bounces (null sender, as RFC 3464 notices do).
import { randomBytes } from 'node:crypto';
import type { LocalDirectory } from '../pipeline/check.ts';
import type { EnvelopeRecipient } from '../queue/envelope.ts';
import { queueGenerated, type SpoolBegin } from '../queue/generated.ts';
import type { AlertMailer } from './alerts.ts';

export type SpoolLike = SpoolBegin;

export interface SpoolAlertMailerOptions {
  readonly spool: SpoolLike;
  readonly hostname: string;
  /** Where alerts go, e.g. postmaster@example.org. */
  readonly to: string;
  /** Resolves aliases of a local address; without it the address is taken as a mailbox. */
  readonly directory?: LocalDirectory;
  readonly clock?: () => number;
}

/** The listener name alert mails carry in their queue entry (they came from no client). */
export const ALERT_LISTENER = 'outbound-guard';

function route(to: string, directory: LocalDirectory | undefined): EnvelopeRecipient[] {
  const domain = to.slice(to.lastIndexOf('@') + 1).toLowerCase();
  if (!directory) return [{ address: to, mailbox: to, transport: 'local' }];
  if (!directory.isLocalDomain(domain)) return [{ address: to, mailbox: to, transport: 'remote' }];
  const r = directory.resolveRecipient(to);
  if (r.kind !== 'local') return [];
  return [...r.mailboxes.map((m) => ({ address: to, mailbox: m, transport: 'local' as const })), ...r.external.map((m) => ({ address: to, mailbox: m, transport: 'remote' as const }))];
}

/** RFC 2047 encoded-word for a header value that is not plain ASCII. */
function headerValue(v: string): string {
  return /^[\x20-\x7e]*$/.test(v) ? v : `=?UTF-8?B?${Buffer.from(v, 'utf8').toString('base64')}?=`;
}

export function alertMessage(o: { from: string; to: string; subject: string; text: string; hostname: string; date: Date }): Buffer {
  const body = o.text.replace(/\r?\n/g, '\r\n');
  const head = [
    `From: Mailward outbound guard <${o.from}>`,
    `To: <${o.to}>`,
    `Subject: ${headerValue(o.subject)}`,
    `Date: ${o.date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${randomBytes(12).toString('base64url')}.guard@${o.hostname}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'Auto-Submitted: auto-generated', // RFC 3834 §5: no auto-replies to this
  ];
  return Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}${body.endsWith('\r\n') ? '' : '\r\n'}`, 'utf8');
}

export function spoolAlertMailer(o: SpoolAlertMailerOptions): AlertMailer {
  return {
    async send(subject, text) {
      const recipients = route(o.to, o.directory);
      if (recipients.length === 0) throw new Error(`${o.to} has no mailbox or alias; create one (the guard's alerts go there)`);
      const bytes = alertMessage({ from: `mailer-daemon@${o.hostname}`, to: o.to, subject, text, hostname: o.hostname, date: new Date((o.clock ?? Date.now)()) });
      await queueGenerated(
        o.spool,
        {
          mailFrom: '',
          recipients,
          client: { address: '127.0.0.1', listener: ALERT_LISTENER, sessionId: `guard-${Date.now()}` },
          smtputf8: false,
          body: bytes.some((b) => b > 0x7f) ? '8BITMIME' : '7BIT',
          noBounce: 'outbound guard alert',
        },
        bytes,
      );
    },
  };
}
