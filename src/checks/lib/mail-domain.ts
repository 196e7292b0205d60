// Whether a domain can receive mail, as Postfix's reject_unknown_sender_domain and
// reject_unknown_recipient_domain ask it: an MX record, or else an A or AAAA record
// (RFC 5321 §5.1 implicit MX). A null MX (RFC 7505) says the domain takes no mail at all.
import type { Resolver } from 'node:dns/promises';
import { classify, errorCode, withSignal } from './dns.ts';

export type MailDomainAnswer =
  | { readonly kind: 'ok'; readonly via: 'mx' | 'a' | 'aaaa' }
  /** "0 ." is the only MX (RFC 7505 §3). */
  | { readonly kind: 'null-mx' }
  /** The name does not exist, or exists with neither MX nor A/AAAA. */
  | { readonly kind: 'unknown'; readonly detail: 'nxdomain' | 'no-mx-no-address' }
  /** SERVFAIL, time-out, …: we could not find out. */
  | { readonly kind: 'temporary'; readonly detail: string };

export async function mailDomain(dns: Resolver, domain: string, signal: AbortSignal): Promise<MailDomainAnswer> {
  try {
    const mx = await withSignal(dns.resolveMx(domain), signal);
    // RFC 7505 §3: a single MX with an empty (root) exchange means "no mail here".
    if (mx.length === 1 && (mx[0]!.exchange === '' || mx[0]!.exchange === '.')) return { kind: 'null-mx' };
    if (mx.length > 0) return { kind: 'ok', via: 'mx' };
  } catch (err) {
    const f = classify(err);
    if (f === 'nxdomain') return { kind: 'unknown', detail: 'nxdomain' };
    if (f === 'temporary') return { kind: 'temporary', detail: `MX: ${errorCode(err)}` };
  }
  // No MX: the domain itself is the mail host if it has an address (RFC 5321 §5.1).
  const [a, aaaa] = await Promise.allSettled([withSignal(dns.resolve4(domain), signal), withSignal(dns.resolve6(domain), signal)]);
  if (a.status === 'fulfilled' && a.value.length > 0) return { kind: 'ok', via: 'a' };
  if (aaaa.status === 'fulfilled' && aaaa.value.length > 0) return { kind: 'ok', via: 'aaaa' };
  const failed = [a, aaaa].flatMap((r) => (r.status === 'rejected' && classify(r.reason) === 'temporary' ? [errorCode(r.reason)] : []));
  if (failed.length > 0) return { kind: 'temporary', detail: `A/AAAA: ${failed.join(', ')}` };
  const nx = [a, aaaa].some((r) => r.status === 'rejected' && classify(r.reason) === 'nxdomain');
  return { kind: 'unknown', detail: nx ? 'nxdomain' : 'no-mx-no-address' };
}
