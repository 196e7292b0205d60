// The shared body of sender-domain and recipient-domain (Postfix's reject_unknown_sender_domain and
// reject_unknown_recipient_domain): our own domains and address literals pass without a lookup;
// otherwise the domain must take mail (lib/mail-domain.ts), with each role's own status codes.
// A resolver that stops answering is noted once by its watch, not logged per message.
import type { Mailbox } from '../../core/address.ts';
import { perm, temp } from '../../core/reply.ts';
import { PASS, defer, reject, type Verdict } from '../../core/verdict.ts';
import type { CheckContext, CheckEnv } from '../../pipeline/check.ts';
import { noteMailDomain, resolverWatch } from './dns-outage.ts';
import { mailDomain } from './mail-domain.ts';

export interface DomainRole {
  /** The check's name, for logs and the resolver watch. */
  readonly check: string;
  /** "sender" or "recipient": the words of the reply and the log. */
  readonly role: 'sender' | 'recipient';
  /** Enhanced status (and reply code) of a null MX (RFC 7505 §4.2 / §4.3). */
  readonly nullMx: readonly [enhanced: string, code: number];
  /** Enhanced status of a domain that takes no mail (5.1.x), and of a lookup that failed (4.1.x). */
  readonly unknown: string;
  readonly temporary: string;
}

/** A function judging one mailbox's domain, as the check with `role` does. */
export function mailDomainJudge(env: CheckEnv, r: DomainRole): (ctx: CheckContext, who: Mailbox) => Promise<Verdict> {
  const ours = new Set(env.domains.map((d) => d.toLowerCase()));
  const watch = resolverWatch(env.dns, env.log);
  const Role = r.role === 'sender' ? 'Sender' : 'Recipient';
  return async (ctx, mailbox) => {
    const domain = mailbox.domain;
    if (ours.has(domain) || env.directory.isLocalDomain(domain) || domain.startsWith('[')) return PASS;
    const who = `<${mailbox.address}>: ${Role} address rejected`;
    const generation = watch.generation;
    const answer = await mailDomain(env.dns, domain, ctx.signal);
    noteMailDomain(watch, generation, answer, { check: r.check, domain }, ctx.signal);
    switch (answer.kind) {
      case 'ok':
        return PASS;
      case 'null-mx':
        return reject(perm(r.nullMx[0], `${who}: Domain ${domain} does not accept mail (nullMX)`, r.nullMx[1]), `${r.role} domain ${domain} has a null MX`);
      case 'unknown':
        return reject(perm(r.unknown, `${who}: Domain not found`), `${r.role} domain ${domain}: ${answer.detail}`);
      case 'temporary':
        env.log.debug({ check: r.check, domain, err: answer.detail }, `${r.role} domain lookup failed; deferring`);
        return defer(temp(r.temporary, `${who}: Domain not found`), `${r.role} domain ${domain}: DNS failure ${answer.detail}`);
    }
  };
}
