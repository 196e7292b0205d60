// What a check answers: data, not exceptions (ARCHITECTURE convention 2). The runner takes the
// first decisive verdict of a stage's ordered list; pass and score let the list go on.
import type { SmtpReply } from './reply.ts';

export type Verdict =
  /** No opinion; the next check decides. May carry header lines to add to the message. */
  | { readonly kind: 'pass'; readonly headers?: readonly string[]; readonly tags?: readonly VerdictTag[] }
  /** Accept now and skip the rest of this stage's list (only checks declared able to permit). */
  | { readonly kind: 'permit'; readonly reason: string }
  /** Refuse with a 5xx. */
  | { readonly kind: 'reject'; readonly reply: SmtpReply; readonly reason: string }
  /** Refuse for now with a 4xx. */
  | { readonly kind: 'defer'; readonly reply: SmtpReply; readonly reason: string }
  /** Answer 250 but drop the recipient (or the message at DATA) silently. */
  | { readonly kind: 'discard'; readonly reason: string }
  /** Add points to the message's score (spam scoring) and go on. */
  | { readonly kind: 'score'; readonly points: number; readonly rule: string; readonly headers?: readonly string[]; readonly tags?: readonly VerdictTag[] };

/**
 * Facts a non-deciding verdict tells the session about the message. `auth-failed`: the sender
 * failed SPF or DMARC, so the envelope sender is likely forged and no bounce may go to it
 * (RFC 3834 spirit; no backscatter). `sender-verified`: the envelope sender's own domain vouched
 * for it (SPF pass for the MAIL FROM domain, or a valid DKIM signature of that domain or a parent
 * of it), so a notice to it reaches the real sender; forwarded mail bounces only then.
 * `dmarc-failed`: the From domain failed DMARC under a quarantine or reject policy it publishes
 * (forwarding.junk keeps such mail from being forwarded).
 */
export type VerdictTag = 'auth-failed' | 'sender-verified' | 'dmarc-failed';

export const PASS: Verdict = Object.freeze({ kind: 'pass' });
export const pass = (headers?: readonly string[]): Verdict => (headers ? { kind: 'pass', headers } : PASS);
export const permit = (reason: string): Verdict => ({ kind: 'permit', reason });
export const reject = (reply: SmtpReply, reason: string): Verdict => ({ kind: 'reject', reply, reason });
export const defer = (reply: SmtpReply, reason: string): Verdict => ({ kind: 'defer', reply, reason });
export const discard = (reason: string): Verdict => ({ kind: 'discard', reason });
export const score = (points: number, rule: string, headers?: readonly string[]): Verdict =>
  headers ? { kind: 'score', points, rule, headers } : { kind: 'score', points, rule };

/** The same pass or score verdict carrying `tags` as well. */
export const tagged = <V extends Verdict>(v: V, ...tags: VerdictTag[]): V =>
  v.kind === 'pass' || v.kind === 'score' ? { ...v, tags: [...(v.tags ?? []), ...tags] } : v;

/** Verdicts that end a stage's list. */
export const isDecisive = (v: Verdict): boolean => v.kind === 'permit' || v.kind === 'reject' || v.kind === 'defer' || v.kind === 'discard';
