// What a content score means and how it is shown, shared by the session (which decides on the
// total of every check's points) and the spam library (whose CLI explains a score): the class,
// the X-Spam-* fields in SpamAssassin's format (existing Sieve rules and clients read them).
// Pure, no I/O.

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
  /** The spam threshold, shown as required=… */
  readonly spam: number;
  /** What auto-learning did with the message, shown as autolearn=… */
  readonly autolearn?: 'spam' | 'ham' | 'no' | 'failed';
}

/**
 * X-Spam-Score, X-Spam-Status ("Yes, score=6.8 required=5.0 tests=BAYES_99,HTML_ONLY") and, for
 * spam, X-Spam-Flag: YES. Whoever adds these must first remove any X-Spam-* fields the message
 * arrived with: a sender could otherwise write its own verdict.
 */
export function statusFields(score: number, tests: readonly string[], opts: StatusOptions): string[] {
  const isSpam = score >= opts.spam;
  const list = [...tests].sort().join(',') || 'none';
  const status = `${isSpam ? 'Yes' : 'No'}, score=${formatScore(score)} required=${formatScore(opts.spam)} tests=${list}` + (opts.autolearn ? ` autolearn=${opts.autolearn}` : '');
  const out = [`X-Spam-Score: ${formatScore(score)}`, `X-Spam-Status: ${status}`];
  if (isSpam) out.push('X-Spam-Flag: YES');
  return out;
}

/** The Subject of a spam: the prefix in front, once (a message marked twice keeps one). */
export function markSubject(subject: string | undefined, prefix: string): string {
  const s = (subject ?? '').trim();
  if (prefix === '' || s.startsWith(prefix)) return s;
  return s === '' ? prefix : `${prefix} ${s}`;
}
