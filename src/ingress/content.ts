// What the session does with a message at end of DATA once every check has answered: the total
// score and its class (ham / spam / kill), our X-Spam-* fields, what the envelope must say
// (no bounce to a likely forged sender, the Junk folder, quarantine), and the header block edit
// that strips fields a sender must not be able to set before ours are added.
import { classify, statusFields, type SpamClass } from '../core/spam-verdict.ts';
import { prefixSubject, removeFields } from '../core/header-block.ts';
import type { VerdictTag } from '../core/verdict.ts';

/** The thresholds of `checks.spam`; without them the session classifies nothing. */
export interface ContentPolicy {
  /** X-Spam-Score and X-Spam-Status are added at or above this total. */
  readonly tag: number;
  /** Spam at or above this total: Subject prefix, local delivery into Junk. */
  readonly spam: number;
  /** At or above this total: kept in quarantine, not delivered, never bounced. */
  readonly kill: number;
  readonly subjectPrefix: string;
}

/** Points from one stage (or one recipient), as the runner summed them. */
export interface StageScore {
  readonly score: number;
  /** The runner's "rule=points" entries. */
  readonly rules: readonly string[];
}

export interface ContentDecision {
  readonly score: number;
  readonly rules: readonly string[];
  /** Undefined when no content policy is configured. */
  readonly class: SpamClass | undefined;
  /** Our X-Spam-* fields (empty below the tag threshold, when no check scored, or without a policy). */
  readonly fields: readonly string[];
  readonly noBounce?: string;
  /** The envelope sender's domain vouched for it (a check tagged sender-verified, none auth-failed). */
  readonly senderVerified: boolean;
  readonly folder?: string;
  readonly quarantine: boolean;
}

/** The Maildir++ folder spam goes to (Dovecot's and most clients' default name). */
export const JUNK_FOLDER = 'Junk';

/**
 * Adds up the stages' points and decides. Spam and kill-level mail never bounce ("spam"); nor
 * does mail a check tagged auth-failed (SPF fail/softfail, DMARC fail): its sender is likely
 * forged, and a bounce to it would be backscatter. Kill-level mail carries the Junk folder too,
 * so that a release from quarantine does not land in the inbox.
 */
export function decideContent(policy: ContentPolicy | undefined, stages: readonly StageScore[], tags: ReadonlySet<VerdictTag>): ContentDecision {
  const score = stages.reduce((sum, s) => sum + s.score, 0);
  const rules = stages.flatMap((s) => s.rules);
  const cls = policy ? classify(score, policy) : undefined;
  const junk = cls === 'spam' || cls === 'kill';
  const noBounce = junk ? 'spam' : tags.has('auth-failed') ? 'auth-failed' : undefined;
  return {
    score,
    rules,
    class: cls,
    // A message no check scored has no verdict to show; with the spam check in the list, every
    // message is scored.
    fields: policy && rules.length > 0 && score >= policy.tag ? statusFields(score, testNames(rules), { spam: policy.spam }) : [],
    ...(noBounce ? { noBounce } : {}),
    senderVerified: tags.has('sender-verified') && !tags.has('auth-failed'),
    ...(junk ? { folder: JUNK_FOLDER } : {}),
    quarantine: cls === 'kill',
  };
}

/**
 * Rule names for X-Spam-Status "tests=": the runner's "rule=points" without the points, and the
 * spam check's "spam(A,B)" as its rules A and B.
 */
export function testNames(rules: readonly string[]): string[] {
  const out: string[] = [];
  for (const r of rules) {
    const name = r.replace(/=[-+0-9.e]+$/, '');
    const inner = /^spam\((.*)\)$/.exec(name);
    if (inner) out.push(...inner[1]!.split(',').filter((n) => n !== ''));
    else out.push(name);
  }
  return [...new Set(out)];
}

/** The authserv-id an Authentication-Results value starts with (RFC 8601 §2.2), lower-cased. */
export function authservId(value: string): string {
  return /^[^\s;]*/.exec(value.replace(/\([^()]*\)/g, ' ').trim())![0].toLowerCase();
}

export interface HeadEdit {
  readonly hostname: string;
  /** Remove X-Spam-* fields the message came with (we write our own verdict). */
  readonly stripSpam: boolean;
  /** Put this in front of the Subject. */
  readonly subjectPrefix?: string;
  /** Our fields, put on top after the stripping. */
  readonly add: readonly string[];
}

/**
 * The edit of the message's header block: removes X-Spam-* fields (when we classify) and any
 * Authentication-Results claiming to come from us (RFC 8601 §5: a receiver must not trust, and
 * should remove, results under its own authserv-id that it did not add), marks the Subject,
 * and puts our fields on top.
 */
export function editHead(e: HeadEdit): (head: Buffer) => Buffer {
  const ours = e.hostname.toLowerCase();
  return (head) => {
    let h = removeFields(head, (name, value) => {
      const n = name.toLowerCase();
      return (e.stripSpam && n.startsWith('x-spam-')) || (n === 'authentication-results' && authservId(value) === ours);
    });
    if (e.subjectPrefix !== undefined) h = prefixSubject(h, e.subjectPrefix);
    return e.add.length > 0 ? Buffer.concat([Buffer.from(e.add.map((f) => `${f}\r\n`).join(''), 'utf8'), h]) : h;
  };
}
