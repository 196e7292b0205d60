// The Bayes arithmetic, pure: Gary Robinson's per-token probability with a prior for rare tokens,
// and Fisher's chi-square combination of the strongest tokens, as SpamBayes and SpamAssassin
// compute them ("A Statistical Approach to the Spam Problem", Linux Journal 107, 2003).

export interface BayesParams {
  /** Strength of the prior: how many messages' worth of evidence the prior x counts for. */
  readonly s: number;
  /** Probability assumed for a token never seen. */
  readonly x: number;
  /** Tokens whose probability lies within this distance of 0.5 are ignored. */
  readonly minStrength: number;
  /** At most this many of the strongest tokens are combined. */
  readonly maxClues: number;
}

export const DEFAULT_BAYES: BayesParams = Object.freeze({ s: 0.45, x: 0.5, minStrength: 0.1, maxClues: 150 });

export interface TokenCounts {
  readonly spam: number;
  readonly ham: number;
}

export interface Clue {
  readonly token: string;
  readonly probability: number;
  readonly spam: number;
  readonly ham: number;
}

export interface BayesResult {
  /** 0 = surely ham, 1 = surely spam. */
  readonly probability: number;
  /** The tokens that decided, strongest first. */
  readonly clues: readonly Clue[];
}

/** Robinson's f(w): the spam share of a token's ratios, pulled toward x when seen rarely. */
export function tokenProbability(spam: number, ham: number, nspam: number, nham: number, p: BayesParams = DEFAULT_BAYES): number {
  const spamRatio = nspam > 0 ? Math.min(1, spam / nspam) : 0;
  const hamRatio = nham > 0 ? Math.min(1, ham / nham) : 0;
  const sum = spamRatio + hamRatio;
  if (sum === 0) return p.x;
  const prob = spamRatio / sum;
  const n = spam + ham;
  return (p.s * p.x + n * prob) / (p.s + n);
}

/** P(chi² ≥ x2) for v degrees of freedom (v even): the series of the regularised gamma function. */
export function chi2Q(x2: number, v: number): number {
  const m = x2 / 2;
  let term = Math.exp(-m);
  let sum = term;
  for (let i = 1; i < v / 2; i++) {
    term *= m / i;
    sum += term;
  }
  return Math.min(sum, 1);
}

/** Fisher/Robinson combination (SpamBayes's chi2_spamprob): 0.5 when the evidence is absent or
 * torn both ways, near 0 or 1 when it agrees. */
export function combine(probs: ArrayLike<number>): number {
  const n = probs.length;
  if (n === 0) return 0.5;
  let lnHam = 0;
  let lnSpam = 0;
  for (let i = 0; i < n; i++) {
    const p = probs[i]!;
    // Clamp so that a token seen only on one side cannot force a logarithm of 0.
    const q = Math.min(Math.max(p, 1e-6), 1 - 1e-6);
    lnSpam += Math.log(1 - q);
    lnHam += Math.log(q);
  }
  const spamness = 1 - chi2Q(-2 * lnSpam, 2 * n);
  const hamness = 1 - chi2Q(-2 * lnHam, 2 * n);
  return (spamness - hamness + 1) / 2;
}

export function classify(
  tokens: readonly string[],
  counts: readonly TokenCounts[],
  nspam: number,
  nham: number,
  p: BayesParams = DEFAULT_BAYES,
): BayesResult {
  const spam = new Float64Array(tokens.length);
  const ham = new Float64Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    spam[i] = counts[i]?.spam ?? 0;
    ham[i] = counts[i]?.ham ?? 0;
  }
  return classifyCounts(spam, ham, nspam, nham, p, (i) => tokens[i]!);
}

/**
 * classify() over counts in two parallel arrays (token i seen in spam[i] spam and ham[i] ham
 * messages), with the tokens' names asked only for the clues, and only when `clues` is read:
 * scoring needs the probability, the explanation the clues.
 */
export function classifyCounts(
  spam: ArrayLike<number>,
  ham: ArrayLike<number>,
  nspam: number,
  nham: number,
  p: BayesParams,
  tokenName: (i: number) => string,
): BayesResult {
  // Probabilities and strengths in typed arrays and indices sorted, objects only for the clues
  // kept: this runs for every message, over a few hundred tokens.
  const n = spam.length;
  const probs = new Float64Array(n);
  const strength = new Float64Array(n);
  const strong: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = spam[i]!;
    const h = ham[i]!;
    if (s === 0 && h === 0) continue;
    const prob = tokenProbability(s, h, nspam, nham, p);
    const d = Math.abs(prob - 0.5);
    if (d < p.minStrength) continue;
    probs[i] = prob;
    strength[i] = d;
    strong.push(i);
  }
  // Strongest first; the sort is stable, so ties keep the tokens' order and the cut at
  // maxClues is the same every time.
  strong.sort((a, b) => strength[b]! - strength[a]!);
  const kept = strong.length > p.maxClues ? strong.slice(0, p.maxClues) : strong;
  const keptProbs = new Float64Array(kept.length);
  for (let j = 0; j < kept.length; j++) keptProbs[j] = probs[kept[j]!]!;
  let clues: Clue[] | undefined;
  return {
    probability: combine(keptProbs),
    get clues(): readonly Clue[] {
      clues ??= kept.map((i) => ({ token: tokenName(i), probability: probs[i]!, spam: spam[i]!, ham: ham[i]! }));
      return clues;
    },
  };
}
