// Turns a stage outcome into the one access(5) action Postfix accepts per request. A reject or
// defer keeps the check's own reply code and enhanced status code unless the operator chose
// another action; a permit is DUNNO by default (OK would end Postfix's restriction list too).
import { DEFAULT_CHECK_ACTIONS, type PolicyAction, type PolicydConfig } from '../config/policyd-schema.ts';
import { perm, temp, type SmtpReply } from '../core/reply.ts';
import type { StageOutcome } from '../pipeline/runner.ts';

export interface ActionSettings {
  readonly permit: 'DUNNO' | 'OK';
  readonly reject: PolicyAction;
  readonly defer: PolicyAction;
  readonly discard: PolicyAction;
  readonly checks: Readonly<Record<string, { readonly reject?: PolicyAction; readonly defer?: PolicyAction; readonly discard?: PolicyAction }>>;
}

/** The configured actions with the per-check defaults (greylist → DEFER_IF_PERMIT) merged under them. */
export function actionSettings(a: PolicydConfig['actions']): ActionSettings {
  const checks: Record<string, { reject?: PolicyAction; defer?: PolicyAction; discard?: PolicyAction }> = {};
  for (const [name, v] of Object.entries(DEFAULT_CHECK_ACTIONS)) checks[name] = { ...v };
  for (const [name, v] of Object.entries(a.checks)) checks[name] = { ...checks[name], ...v };
  return { permit: a.permit, reject: a.reject, defer: a.defer, discard: a.discard, checks };
}

export interface ActionResult {
  /** The value of the `action=` attribute. */
  readonly action: string;
  /** The header field sent with PREPEND, as the check gave it. */
  readonly prepended?: string;
}

export interface ActionContext {
  /** PREPEND cannot run in smtpd_end_of_data_restrictions (access(5)). */
  readonly canPrepend: boolean;
  /** Picks the one header to prepend from the verdict's (e.g. the first not sent yet for this
   *  transaction), or undefined for none: Postfix takes one action per request. */
  readonly pickHeader: (headers: readonly string[]) => string | undefined;
}

// Postfix replies are single lines; keep ours short enough for its 2048-byte line limit with
// the "<rcpt>: Recipient address rejected: " prefix it adds.
const MAX_TEXT = 400;

/** One line of printable text: controls become spaces, runs of space collapse. */
export function oneLine(text: string, max = MAX_TEXT): string {
  const t = text.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/ {2,}/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}

/** A folded header field as one `Name: value` line (RFC 5322 §2.2.3 unfolding). */
export function unfoldHeader(h: string): string {
  return oneLine(h.replace(/\r?\n(?=[ \t])/g, ''), 1000);
}

/**
 * Postfix puts "<address>: Sender address rejected: " (or Recipient, Client host, Helo command)
 * before the text of a policy REJECT/DEFER itself; the same prefix in our text (access maps and
 * sender-login write it, as the server's own replies need it) would appear twice.
 */
const POSTFIX_PREFIX = /^(?:<[^>]*>: |[^\s:]+: )?(?:Sender address|Recipient address|Client host|Helo command) rejected: /;

const replyLine = (r: SmtpReply): string => oneLine(typeof r.text === 'string' ? r.text : r.text.join(' ')).replace(POSTFIX_PREFIX, '');

/** Code, enhanced code and text of a reply, forced into class 4 or 5 to match the action. */
function parts(r: SmtpReply, cls: 4 | 5): { code: number; enhanced: string; text: string } {
  const code = Math.floor(r.code / 100) === cls ? r.code : cls === 5 ? 554 : 451;
  // RFC 3463 §3.1: the class digit of the enhanced code matches the reply's.
  const enhanced = r.enhanced && /^[245]\.\d{1,3}\.\d{1,3}$/.test(r.enhanced) ? `${cls}${r.enhanced.slice(1)}` : `${cls}.7.1`;
  return { code, enhanced, text: replyLine(r) || (cls === 5 ? 'Rejected' : 'Try again later') };
}

function render(action: PolicyAction, r: SmtpReply, logText: string): string {
  switch (action) {
    case 'reply': {
      const p = parts(r, r.code >= 500 ? 5 : 4);
      return `${p.code} ${p.enhanced} ${p.text}`;
    }
    case 'REJECT': {
      const p = parts(r, 5);
      return `REJECT ${p.enhanced} ${p.text}`;
    }
    case 'DEFER':
    case 'DEFER_IF_PERMIT':
    case 'DEFER_IF_REJECT': {
      const p = parts(r, 4);
      return `${action} ${p.enhanced} ${p.text}`;
    }
    case 'HOLD':
    case 'DISCARD':
      // The text of HOLD and DISCARD only goes to Postfix's log: give the operator the why.
      return `${action} ${oneLine(logText, 200)}`;
  }
}

export function toAction(out: StageOutcome, s: ActionSettings, ctx: ActionContext): ActionResult {
  const v = out.verdict;
  const per = out.check ? s.checks[out.check] : undefined;
  // Postfix logs the text of HOLD and DISCARD: name us and the check once.
  const why = (reason: string): string => (out.check && !reason.startsWith(`${out.check}:`) ? `mailward ${out.check}: ${reason}` : `mailward ${reason}`);
  switch (v.kind) {
    case 'reject':
      return { action: render(per?.reject ?? s.reject, v.reply, why(v.reason)) };
    case 'defer':
      return { action: render(per?.defer ?? s.defer, v.reply, why(v.reason)) };
    case 'discard': {
      const a = per?.discard ?? s.discard;
      // A discard has no reply of its own; 'reply' means the natural action, DISCARD.
      const stand = a === 'REJECT' ? perm('5.7.1', 'Message refused') : temp('4.7.1', 'Try again later');
      return { action: render(a === 'reply' ? 'DISCARD' : a, stand, why(v.reason)) };
    }
    case 'permit':
      return { action: s.permit };
    case 'pass':
    case 'score': {
      const chosen = ctx.canPrepend ? ctx.pickHeader(out.headers) : undefined;
      return chosen === undefined ? { action: 'DUNNO' } : { action: `PREPEND ${unfoldHeader(chosen)}`, prepended: chosen };
    }
  }
}
