// What a score means and how it is shown: the class for the session (ham / spam / kill), the
// X-Spam-* header fields in SpamAssassin's format (so existing Sieve rules and mail clients work),
// the subject prefix, and the explanation `mailward spam score FILE` prints.
import { formatProbability, type SpamFilter, type ScoreContext, type SpamResult } from './filter.ts';

export type SpamClass = 'ham' | 'spam' | 'kill';

export interface Thresholds {
  /** Marked as spam at or above this score (default 5.0). */
  readonly spam: number;
  /** Not delivered (quarantined) at or above this score (default 10.0). */
  readonly kill: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = Object.freeze({ spam: 5.0, kill: 10.0 });

export function classify(score: number, t: Thresholds = DEFAULT_THRESHOLDS): SpamClass {
  if (score >= t.kill) return 'kill';
  if (score >= t.spam) return 'spam';
  return 'ham';
}

/** One decimal, as SpamAssassin writes it ("6.8", "-1.9", "0.0"). */
export function formatScore(n: number): string {
  const r = Math.round(n * 10) / 10;
  return (Object.is(r, -0) ? 0 : r).toFixed(1);
}

export interface StatusOptions {
  readonly spam: number;
  /** What auto-learning did with the message, shown as autolearn=… */
  readonly autolearn?: 'spam' | 'ham' | 'no' | 'failed';
}

/**
 * X-Spam-Score, X-Spam-Status ("Yes, score=6.8 required=5.0 tests=BAYES_99,HTML_ONLY
 * autolearn=no") and, for spam, X-Spam-Flag: YES. The session must remove any X-Spam-* fields
 * the message arrived with before adding these: a sender could otherwise write its own verdict.
 */
export function statusHeaders(r: Pick<SpamResult, 'score' | 'hits'>, opts: StatusOptions): string[] {
  const isSpam = r.score >= opts.spam;
  const tests = r.hits.map((h) => h.name).sort().join(',') || 'none';
  const status = `${isSpam ? 'Yes' : 'No'}, score=${formatScore(r.score)} required=${formatScore(opts.spam)} tests=${tests}` + (opts.autolearn ? ` autolearn=${opts.autolearn}` : '');
  const out = [`X-Spam-Score: ${formatScore(r.score)}`, `X-Spam-Status: ${status}`];
  if (isSpam) out.push('X-Spam-Flag: YES');
  return out;
}

/** The Subject of a spam: the prefix in front, once (a message marked twice keeps one). */
export function markSubject(subject: string | undefined, prefix: string): string {
  const s = (subject ?? '').trim();
  if (prefix === '' || s.startsWith(prefix)) return s;
  return s === '' ? prefix : `${prefix} ${s}`;
}

export interface Explanation {
  readonly score: number;
  readonly class: SpamClass;
  readonly result: SpamResult;
}

/** Scores one message for `mailward spam score FILE` (the `spamassassin -t` of Mailward). */
export async function explain(filter: SpamFilter, raw: Buffer | string, t: Thresholds = DEFAULT_THRESHOLDS, ctx: ScoreContext = {}): Promise<Explanation> {
  const result = await filter.score(raw, ctx);
  return { score: result.score, class: classify(result.score, t), result };
}

/** The explanation as text: score and class, each rule with its points, and the Bayes tokens
 * that pulled hardest either way. */
export function formatExplanation(e: Explanation, t: Thresholds = DEFAULT_THRESHOLDS, clues = 10): string {
  const r = e.result;
  const lines = [`score ${formatScore(e.score)} (spam at ${formatScore(t.spam)}, kill at ${formatScore(t.kill)}): ${e.class}`, '', ' points  rule'];
  for (const h of r.hits) lines.push(`${formatScore(h.points).padStart(7)}  ${h.name.padEnd(18)} ${h.description}`);
  if (r.hits.length === 0) lines.push('         (no rule fired)');
  lines.push('');
  if (!r.bayes) {
    lines.push(`Bayes: not consulted yet (learned ${r.totals.nspam} spam and ${r.totals.nham} ham; it needs more of each — see mailward learn)`);
  } else {
    const b = r.bayes;
    lines.push(`Bayes: spam probability ${formatProbability(b.probability)} from ${b.clues.length} of ${b.tokens} tokens (learned ${r.totals.nspam} spam, ${r.totals.nham} ham)`);
    const show = (title: string, list: typeof b.clues): void => {
      if (list.length === 0) return;
      lines.push(`  ${title}:`);
      for (const c of list.slice(0, clues)) lines.push(`    ${c.probability.toFixed(3)}  ${c.token}  (spam ${c.spam}, ham ${c.ham})`);
    };
    show('spam signs', b.clues.filter((c) => c.probability > 0.5));
    show('ham signs', b.clues.filter((c) => c.probability < 0.5));
  }
  return lines.join('\n');
}
