// What a score means and how it is shown: the class (ham / spam / kill), the X-Spam-* header
// fields in SpamAssassin's format and the subject prefix (pure, in core/spam-verdict.ts, which the
// session uses too), and the explanation `mailward spam score FILE` prints.
import { formatProbability, type SpamFilter, type ScoreContext, type SpamResult } from './filter.ts';
import { classify, DEFAULT_THRESHOLDS, formatScore, type SpamClass, type Thresholds } from '../core/spam-verdict.ts';

export { classify, formatScore, markSubject, DEFAULT_THRESHOLDS, type SpamClass, type Thresholds, type StatusOptions } from '../core/spam-verdict.ts';

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
