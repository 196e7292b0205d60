// A login sends only as itself: the envelope sender (and, by default, the header From) must be
// an address the login owns — its own, its aliases, or those listed under `sendAs`, each also
// with a `+tag` when recipientDelimiter is set — the hand-written policy script of the incident,
// built in. The header fields are read strictly (core/mailbox-list.ts; docs/decisions/0015). Without a login, our own domains may
// not be used as envelope sender on the MX port (a forged "from us" is a phishing classic).
import { z } from 'zod';
import { perm } from '../core/reply.ts';
import { pass, reject, type Verdict } from '../core/verdict.ts';
import { parseHeaderFields } from '../core/headers.ts';
import { headerBlockEnd } from '../core/header-block.ts';
import { parseMailboxList } from '../core/mailbox-list.ts';
import { defineCheck, type MessageFacts } from '../pipeline/check.ts';
import { headerField } from './lib/header.ts';
import { compileNetworks } from '../core/net.ts';

const notOwned = perm('5.7.1', 'Sender address rejected: not owned by user', 553);
const headerNotOwned = perm('5.7.1', 'From header address not owned by user', 550);
const ownDomain = perm('5.7.1', 'Sender address rejected: log in to send as a local address', 553);

const Options = z
  .object({
    /** Extra addresses a login may send as: { "alice@example.org": ["sales@example.org", "@example.net"] }. */
    sendAs: z.record(z.string(), z.array(z.string().min(1))).default({}),
    /** Check the header From addresses too, at end of DATA. */
    headerFrom: z.boolean().default(true),
    /** May a login send with the null sender <>? (Only mail robots such as vacation responders do.) */
    allowNullSender: z.boolean().default(false),
    /** Without a login, refuse our own domains as envelope sender on mx listeners. */
    unauthenticatedOwnDomain: z.enum(['reject', 'allow']).default('reject'),
    /** Client networks exempt from that rule (e.g. a scanner that mails from scanner@ours). */
    exceptions: z.array(z.string().min(1)).default([]),
  })
  .strict();

export const senderLogin = defineCheck({
  name: 'sender-login',
  stages: ['mail', 'data'],
  options: Options,
  create: (opts, env) => {
    // The one network parser: mapped ranges and client addresses are folded to IPv4 alike.
    const exceptions = compileNetworks(opts.exceptions, 'checks.sender-login.exceptions');
    const sendAs = new Map(Object.entries(opts.sendAs).map(([login, list]) => [login.toLowerCase(), list.map((a) => a.toLowerCase())]));
    const ownsExactly = (login: string, a: string): boolean => {
      // A login owns its own address even when our directory does not list it (logins checked by
      // Dovecot's auth socket, auth.backend: dovecot): it is the identity just proven.
      if (a === login.toLowerCase() || env.directory.sendAsAllowed(login).includes(a)) return true;
      const extra = sendAs.get(login.toLowerCase()) ?? [];
      return extra.includes(a) || extra.includes(a.slice(a.lastIndexOf('@')));
    };
    // RFC 5233 subaddress: `alice+lists@d` is alice's as it delivers to her (directory's rule:
    // cut at the first delimiter character, not at the start of the local part, not quoted).
    const delimiters = env.recipientDelimiter ?? '';
    const owns = (login: string, address: string): boolean => {
      const a = address.toLowerCase();
      if (ownsExactly(login, a)) return true;
      const at = a.lastIndexOf('@');
      if (delimiters === '' || a.startsWith('"')) return false;
      const cuts = [...delimiters].map((d) => a.indexOf(d)).filter((i) => i > 0 && i < at);
      return cuts.length > 0 && ownsExactly(login, `${a.slice(0, Math.min(...cuts))}${a.slice(at)}`);
    };
    const exempt = (ip: string): boolean => exceptions.match(ip) !== undefined;
    return {
      // MAIL answers at once (no I/O); DATA reads the message only for a login.
      mail: (ctx, from) => {
        const login = ctx.session.login;
        if (login) {
          if (from === null) return opts.allowNullSender ? pass() : reject(notOwned, `login ${login} used the null sender`);
          return owns(login, from.address) ? pass() : reject(notOwned, `login ${login} may not send as ${from.address}`);
        }
        if (from && opts.unauthenticatedOwnDomain === 'reject' && ctx.session.listenerKind === 'mx' && env.directory.isLocalDomain(from.domain) && !exempt(ctx.session.clientAddress)) {
          return reject(ownDomain, `unauthenticated client used our domain in ${from.address}`);
        }
        return pass();
      },
      data: (ctx, message) => {
        const login = ctx.session.login;
        if (!login || !opts.headerFrom) return pass();
        return checkHeaderFrom(login, message);
      },
    };
    async function checkHeaderFrom(login: string, message: MessageFacts): Promise<Verdict> {
      const fields = await completeHeaders(message);
      const values = (name: string): string[] => fields.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
      const refuse = (why: string): Verdict => reject(headerNotOwned, `login ${login} ${why}`);
      const from = values('from');
      // RFC 5322 §3.6: From is required. A login's message without one gets the login's
      // address, as Postfix (always_add_missing_headers) and the big providers do.
      if (from.length === 0) return pass([headerField('From', login)]);
      const problem = identityProblem(login, owns, from, values('sender'), 'From', 'Sender') ?? resentProblem(login, owns, values('resent-from'), values('resent-sender'));
      return problem ? refuse(problem) : pass();
    }
  },
});

type Owns = (login: string, address: string) => boolean;

/** The message's header fields, all of them even when the head the session kept was cut short. */
async function completeHeaders(message: MessageFacts): Promise<ReadonlyArray<readonly [string, string]>> {
  if (message.headerComplete !== false) return message.headers;
  const raw = await message.raw();
  return parseHeaderFields(raw.subarray(0, headerBlockEnd(raw) ?? raw.length));
}

/**
 * RFC 5322 §3.6.2: one From field holding mailboxes; when it holds several, one Sender field with
 * exactly one mailbox says who sent it. Every mailbox shown must be the login's own.
 */
function identityProblem(login: string, owns: Owns, from: readonly string[], sender: readonly string[], fromName: string, senderName: string): string | undefined {
  if (from.length > 1) return `sent ${from.length} ${fromName} fields`;
  const f = parseMailboxList(from[0]!);
  if (!f.ok) return `sent an unreadable ${fromName}: ${f.error}`;
  const foreign = f.mailboxes.map((m) => m.address).filter((a) => !owns(login, a));
  if (foreign.length > 0) return `may not use ${fromName}: ${foreign.join(', ')}`;
  if (sender.length > 1) return `sent ${sender.length} ${senderName} fields`;
  if (sender.length === 1) {
    const s = parseMailboxList(sender[0]!);
    if (!s.ok) return `sent an unreadable ${senderName}: ${s.error}`;
    if (s.mailboxes.length !== 1) return `sent a ${senderName} with ${s.mailboxes.length} mailboxes`;
    if (!owns(login, s.mailboxes[0]!.address)) return `may not use ${senderName}: ${s.mailboxes[0]!.address}`;
  } else if (f.mailboxes.length > 1) {
    return `sent ${f.mailboxes.length} ${fromName} mailboxes without a ${senderName}`;
  }
  return undefined;
}

/** Resent blocks (RFC 5322 §3.6.6): each Resent-From read as From is, with Resent-Sender. */
function resentProblem(login: string, owns: Owns, from: readonly string[], sender: readonly string[]): string | undefined {
  if (from.length === 0) return sender.length === 0 ? undefined : identityProblem(login, owns, sender, [], 'Resent-Sender', 'Resent-Sender');
  for (const value of from) {
    // Which Resent-Sender belongs to which block is not marked; any one the login owns will do.
    const problem = identityProblem(login, owns, [value], sender.slice(0, 1), 'Resent-From', 'Resent-Sender');
    if (problem) return problem;
  }
  for (const value of sender.slice(1)) {
    const problem = identityProblem(login, owns, [value], [], 'Resent-Sender', 'Resent-Sender');
    if (problem) return problem;
  }
  return undefined;
}
