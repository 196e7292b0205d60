// Chooses the Bayes bands' points by k-fold cross-validation on the learned part only: Mailward
// (and SpamAssassin, for the false-positive limits) learn k−1 folds and score the k-th; each
// candidate set of band points is then judged on the pooled out-of-fold scores. The held-out part
// is never read here.
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../src/observe/log.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { Deltas } from '../../src/spam/bayes-db.ts';
import { BAYES_BANDS, SpamFilter, bayesBand, type Analysis, type BayesBand } from '../../src/spam/filter.ts';
import { header, parseMessage } from '../../src/spam/mime.ts';
import { RULES } from '../../src/spam/rules.ts';
import { checksumBucket, isHardHam, metrics, type Message, type Metrics, type Scored } from './corpus.ts';
import { prepareSpamAssassin } from './spamassassin.ts';

/** The candidate points of each band that is varied; the other bands keep BAYES_BANDS's points.
 * BAYES_999 is not varied: at a threshold of 5 every value from 5 up marks the same messages. The
 * lower bands only matter for messages that several rules hit, which the corpus has few of. */
export const BAND_GRID: Readonly<Record<string, readonly number[]>> = {
  BAYES_60: [2.0, 2.5, 3.0],
  BAYES_80: [2.5, 3.0, 3.5, 4.0],
  BAYES_95: [3.5, 4.0, 4.5],
  BAYES_99: [4.0, 4.5, 5.0],
};

/** How far the pooled out-of-fold F1 must stay above SpamAssassin's. A candidate chosen right at
 * a limit leaves no room for the difference between one sample and another (the held-out part
 * has 79 hard ham, the folds 171), so the choice keeps a margin on quality and then spends the
 * slack on fewer false positives rather than on recall: a wrongly marked ham costs a reader
 * more than a missed spam. */
export const F1_MARGIN = 0.005;

export interface CvOptions {
  readonly dir: string;
  /** The learned part: the only messages cross-validation reads. */
  readonly train: readonly Message[];
  readonly folds: number;
  readonly spamAt: number;
  /** Temporary folder for SpamAssassin's per-fold databases. */
  readonly work: string;
  /** Limits given by hand instead of measured on SpamAssassin's own out-of-fold scores:
   * false-positive counts over the pooled folds and the lowest pooled F1 accepted. */
  readonly limits?: { readonly easy: number; readonly hard: number; readonly minF1: number };
  /** A file that keeps SpamAssassin's out-of-fold scores: read when it exists (for the same
   * folds), written after they are computed. SpamAssassin takes minutes; Mailward seconds. */
  readonly saScores?: string;
  readonly log: (line: string) => void;
}

export interface OutOfFold {
  readonly m: Message;
  readonly probability: number;
  /** Points of the rules that fired (everything but the Bayes band). */
  readonly rulePoints: number;
  /** Names of the rules that fired. */
  readonly rules: readonly string[];
  /** A few header facts (no body text), for the list of false positives. */
  readonly facts: string;
}

export interface Candidate {
  readonly points: Readonly<Record<string, number>>;
  readonly bands: readonly BayesBand[];
  readonly metrics: Metrics;
  readonly feasible: boolean;
  /** Sum of the points' distances from BAYES_BANDS: the last tie-break (least change). */
  readonly change: number;
}

export interface CvResult {
  readonly folds: number;
  readonly foldSizes: readonly number[];
  /** Whence the limits came, e.g. "SpamAssassin's out-of-fold false positives". */
  readonly limitSource: string;
  readonly maxFpEasy: number;
  readonly maxFpHard: number;
  /** The lowest pooled out-of-fold F1 a candidate may have (SpamAssassin's plus F1_MARGIN). */
  readonly minF1: number;
  readonly spamAssassin?: Metrics;
  readonly mailwardCurrent: Metrics;
  /** Every candidate, best first. */
  readonly candidates: readonly Candidate[];
  readonly chosen: Candidate;
  readonly seconds: number;
  /** Every learned message's out-of-fold Bayes probability, rules and header facts. */
  readonly outOfFold: readonly OutOfFold[];
}

/** The fold (0…folds−1) of a message: its checksum hashed once more, so that folds are not
 * correlated with the learned/held-out split (which used the plain checksum). */
export function foldOf(m: Message, folds: number): number {
  return checksumBucket(`fold:${m.file.split('.')[1]!}`, folds);
}

/** The score the filter gives for a Bayes probability and rule points under `bands` (as
 * SpamFilter.scoreAnalysis sums and rounds them). */
export function scoreWith(bands: readonly BayesBand[], probability: number, rulePoints: number): number {
  return Math.round((bayesBand(probability, bands).points + rulePoints) * 1000) / 1000;
}

export function candidates(): Array<Record<string, number>> {
  let sets: Array<Record<string, number>> = [{}];
  for (const [name, values] of Object.entries(BAND_GRID)) sets = sets.flatMap((s) => values.map((v) => ({ ...s, [name]: v })));
  // A higher probability never earns fewer points.
  return sets.filter((s) => {
    const pts = withPoints(s).map((b) => b.points);
    return pts.every((p, i) => i === 0 || p >= pts[i - 1]!);
  });
}

export function withPoints(points: Readonly<Record<string, number>>): BayesBand[] {
  return BAYES_BANDS.map((b) => ({ ...b, points: points[b.name] ?? b.points }));
}

/** Structure only, never words of the message: the top content type, which text parts there are,
 * whether Date / Message-ID / list fields / a mailer name are present, and the number of relays. */
function headerFacts(raw: Buffer): string {
  const m = parseMessage(raw);
  const ct = (header(m, 'content-type') ?? 'text/plain').split(';')[0]!.trim().toLowerCase();
  const has = (n: string): boolean => header(m, n) !== undefined;
  const flags = [
    ct,
    m.hasPlain ? 'plain' : '',
    m.hasHtml ? 'html' : '',
    m.images > 0 ? `${m.images} img` : '',
    has('date') ? '' : 'no Date',
    has('message-id') ? '' : 'no Message-ID',
    has('list-id') || has('list-unsubscribe') ? 'list fields' : '',
    has('precedence') ? `Precedence ${header(m, 'precedence')!.trim().toLowerCase()}` : '',
    has('x-mailer') || has('user-agent') ? 'mailer named' : '',
    `${m.headers.filter(([n]) => n.toLowerCase() === 'received').length} Received`,
  ];
  return flags.filter((f) => f !== '').join(', ');
}

/** Every learned message's out-of-fold Bayes probability and rules: Mailward learns k−1 folds in
 * a fresh database and scores the k-th, for each k (the held-out part is never read). */
export async function learnedOutOfFold(o: Pick<CvOptions, 'dir' | 'train' | 'folds' | 'log'>): Promise<OutOfFold[]> {
  const byFold: Message[][] = Array.from({ length: o.folds }, () => []);
  for (const m of o.train) byFold[foldOf(m, o.folds)]!.push(m);
  return mailwardOutOfFold(o, byFold);
}

async function mailwardOutOfFold(o: Pick<CvOptions, 'dir' | 'train' | 'folds' | 'log'>, byFold: readonly Message[][]): Promise<OutOfFold[]> {
  // Each message is read once; learning and scoring in every fold reuse the reading.
  const reader = new SpamFilter({ store: new SqliteStore({ path: ':memory:' }, silentLogger()) });
  const analyses = new Map<Message, Analysis>();
  const facts = new Map<Message, string>();
  for (const m of o.train) {
    const raw = readFileSync(join(o.dir, m.file));
    analyses.set(m, reader.analyze(raw));
    facts.set(m, headerFacts(raw));
  }
  await reader.db.store.close();
  const out: OutOfFold[] = [];
  for (let k = 0; k < o.folds; k++) {
    const store = new SqliteStore({ path: ':memory:' }, silentLogger());
    try {
      const filter = new SpamFilter({ store });
      const pending = new Deltas();
      for (const m of o.train) if (foldOf(m, o.folds) !== k) await filter.learnAnalysis(analyses.get(m)!, m.spam ? 'spam' : 'ham', pending);
      await filter.db.apply(pending);
      for (const m of byFold[k]!) {
        const a = analyses.get(m)!;
        const r = await filter.scoreAnalysis(a);
        if (!r.bayes) throw new Error(`fold ${k}: Bayes was not consulted (too few messages learned)`);
        const rulePoints = a.hits.reduce((s, h) => s + h.points, 0);
        // The re-scoring below must give what the filter gave.
        if (scoreWith(BAYES_BANDS, r.bayes.probability, rulePoints) !== r.score) throw new Error(`fold ${k}: ${m.file} re-scores to another total than the filter's`);
        out.push({ m, probability: r.bayes.probability, rulePoints, rules: a.hits.map((h) => h.name), facts: facts.get(m)! });
      }
      o.log(`Mailward fold ${k + 1}/${o.folds}: learned ${o.train.length - byFold[k]!.length}, scored ${byFold[k]!.length}`);
    } finally {
      await store.close();
    }
  }
  return out;
}

async function spamAssassinOutOfFold(o: CvOptions, byFold: readonly Message[][]): Promise<Scored[] | string> {
  if (o.saScores && existsSync(o.saScores)) {
    const kept = JSON.parse(readFileSync(o.saScores, 'utf8')) as { folds: number; scores: Record<string, number> };
    if (kept.folds === o.folds && o.train.every((m) => typeof kept.scores[m.file] === 'number')) {
      o.log(`SpamAssassin: out-of-fold scores read from ${o.saScores}`);
      return o.train.map((m) => ({ m, score: kept.scores[m.file]! }));
    }
    o.log(`SpamAssassin: ${o.saScores} is for other folds or messages; scoring again`);
  }
  const out: Scored[] = [];
  for (let k = 0; k < o.folds; k++) {
    const root = join(o.work, `sa-fold-${k}`);
    const learn = o.train.filter((m) => foldOf(m, o.folds) !== k);
    const sa = await prepareSpamAssassin(o.dir, learn, o.work, root);
    if (typeof sa === 'string') return sa;
    try {
      const pass = await sa.pass(byFold[k]!);
      out.push(...pass.scored);
      o.log(`SpamAssassin fold ${k + 1}/${o.folds}: learned ${learn.length} in ${sa.learnSeconds.toFixed(0)} s, scored ${byFold[k]!.length} at ${(byFold[k]!.length / pass.seconds).toFixed(1)}/s`);
    } finally {
      await sa.close();
      await rm(root, { recursive: true, force: true });
    }
  }
  if (o.saScores) await writeFile(o.saScores, JSON.stringify({ folds: o.folds, scores: Object.fromEntries(out.map((s) => [s.m.file, s.score])) }));
  return out;
}

/** Runs the cross-validation and judges every candidate. Within the limits (pooled F1 at least
 * SpamAssassin's out-of-fold F1 plus F1_MARGIN, no more easy-ham and fewer hard-ham false
 * positives than its out-of-fold scores have) the choice is the fewest false positives, easy and
 * hard together; ties go to the higher F1, then to the least change. */
export async function chooseBands(o: CvOptions): Promise<CvResult> {
  const t0 = performance.now();
  const byFold: Message[][] = Array.from({ length: o.folds }, () => []);
  for (const m of o.train) byFold[foldOf(m, o.folds)]!.push(m);
  const oof = await mailwardOutOfFold(o, byFold);
  let limitSource: string;
  let maxFpEasy: number;
  let maxFpHard: number;
  let minF1: number;
  let spamAssassin: Metrics | undefined;
  if (o.limits) {
    limitSource = 'given on the command line';
    maxFpEasy = o.limits.easy;
    maxFpHard = o.limits.hard;
    minF1 = o.limits.minF1;
  } else {
    const sa = await spamAssassinOutOfFold(o, byFold);
    if (typeof sa === 'string') throw new Error(`${sa}; or give the limits with --max-fp-easy N --max-fp-hard N --min-f1 X`);
    spamAssassin = metrics(sa, o.spamAt);
    limitSource = `SpamAssassin's out-of-fold scores (F1: at least its own plus ${F1_MARGIN}; easy ham: at most as many false positives; hard ham: fewer)`;
    maxFpEasy = spamAssassin.fpEasyCount;
    maxFpHard = Math.max(0, spamAssassin.fpHardCount - 1);
    minF1 = spamAssassin.f1 + F1_MARGIN;
  }
  const judged: Candidate[] = candidates().map((points) => {
    const bands = withPoints(points);
    const mt = metrics(
      oof.map((x) => ({ m: x.m, score: scoreWith(bands, x.probability, x.rulePoints) })),
      o.spamAt,
    );
    const change = BAYES_BANDS.reduce((s, b) => s + Math.abs((points[b.name] ?? b.points) - b.points), 0);
    return { points, bands, metrics: mt, feasible: mt.f1 >= minF1 && mt.fpEasyCount <= maxFpEasy && mt.fpHardCount <= maxFpHard, change };
  });
  // Fewest false positives first: the F1 floor already keeps quality above SpamAssassin's with a
  // margin, so what is left over goes to the ham side, where the bar is hardest.
  judged.sort(
    (a, b) =>
      Number(b.feasible) - Number(a.feasible) ||
      a.metrics.fpHardCount + a.metrics.fpEasyCount - (b.metrics.fpHardCount + b.metrics.fpEasyCount) ||
      b.metrics.f1 - a.metrics.f1 ||
      a.change - b.change,
  );
  const current = metrics(
    oof.map((x) => ({ m: x.m, score: scoreWith(BAYES_BANDS, x.probability, x.rulePoints) })),
    o.spamAt,
  );
  return {
    folds: o.folds,
    foldSizes: byFold.map((f) => f.length),
    limitSource,
    maxFpEasy,
    maxFpHard,
    minF1,
    ...(spamAssassin ? { spamAssassin } : {}),
    mailwardCurrent: current,
    candidates: judged,
    chosen: judged[0]!,
    seconds: (performance.now() - t0) / 1000,
    outOfFold: oof,
  };
}

const fmtPoints = (n: number): string => n.toFixed(1);

/** The cross-validation as Markdown: procedure, limits, every candidate, the choice. */
export function cvReport(r: CvResult, learned: number): string {
  const names = Object.keys(BAND_GRID);
  const m0 = r.candidates[0]!.metrics;
  const lines = [
    `${r.folds}-fold cross-validation on the learned part only (${learned} messages; folds of ${r.foldSizes.join(', ')}, by checksum). In each fold Mailward learns the other ${r.folds - 1} folds in a fresh database and scores this one; the Bayes probability and the rules' points of every message are kept, so each candidate set of band points is judged on the same ${learned} pooled out-of-fold scores. Spam = score ≥ 5.`,
    '',
    `Limits: ${r.limitSource}: pooled F1 at least ${r.minF1.toFixed(4)}, at most ${r.maxFpEasy} of ${m0.nEasy} easy ham and ${r.maxFpHard} of ${m0.nHard} hard ham.` +
      (r.spamAssassin ? ` SpamAssassin out of fold: F1 ${r.spamAssassin.f1.toFixed(4)}, easy ham ${r.spamAssassin.fpEasyCount}, hard ham ${r.spamAssassin.fpHardCount}.` : ''),
    '',
    `Choice: within the limits, the fewest false positives (easy and hard ham together); ties go to the higher F1, then to the points closest to the previous ones. Varied: ${names.join(', ')}; the other bands keep their points (${BAYES_BANDS.filter((b) => !names.includes(b.name)).map((b) => `${b.name} ${fmtPoints(b.points)}`).join(', ')}).`,
    '',
    `| ${names.join(' | ')} | F1 | precision | recall | FP easy | FP hard | within limits |`,
    `|${names.map(() => '---').join('|')}|---|---|---|---|---|---|`,
  ];
  for (const c of r.candidates) {
    const mark = c === r.chosen ? ' **chosen**' : '';
    lines.push(
      `| ${names.map((n) => fmtPoints(c.points[n]!)).join(' | ')} | ${c.metrics.f1.toFixed(4)} | ${c.metrics.precision.toFixed(4)} | ${c.metrics.recall.toFixed(4)} | ${c.metrics.fpEasyCount} | ${c.metrics.fpHardCount} | ${c.feasible ? 'yes' : 'no'}${mark} |`,
    );
  }
  const inUse = names.every((n) => BAYES_BANDS.find((b) => b.name === n)?.points === r.chosen.points[n]);
  const cur = r.mailwardCurrent;
  lines.push(
    '',
    r.chosen.feasible
      ? `Chosen: ${names.map((n) => `${n} ${fmtPoints(r.chosen.points[n]!)}`).join(', ')} (${r.seconds.toFixed(0)} s).`
      : `**No candidate is within the limits** (${r.seconds.toFixed(0)} s): leave BAYES_BANDS as it is; the first row is only the nearest miss.`,
    `BAYES_BANDS in src/spam/filter.ts ${inUse ? 'holds these points' : `**differs** (${names.map((n) => `${n} ${fmtPoints(BAYES_BANDS.find((b) => b.name === n)?.points ?? NaN)}`).join(', ')}: F1 ${cur.f1.toFixed(4)}, FP easy ${cur.fpEasyCount}, FP hard ${cur.fpHardCount})`}.`,
  );
  return lines.join('\n');
}

const kindOf = (m: Message): string => (m.spam ? 'spam' : isHardHam(m) ? 'hard ham' : 'easy ham');

/** Diagnostics on the pooled out-of-fold scores of the learned part (never the held-out part):
 * each rule's firing counts and precision, what turning it off would change under the chosen
 * bands, and the false positives with their rules, Bayes probability and header facts. */
export function cvDiagnostics(r: CvResult, spamAt: number): string {
  const bands = r.chosen.bands;
  const oof = r.outOfFold;
  const lines = [
    '### Rules on the out-of-fold scores (learned part only)',
    '',
    `Fires on: counts of spam, easy ham, hard ham (of ${oof.filter((x) => x.m.spam).length}, ${oof.filter((x) => !x.m.spam && !isHardHam(x.m)).length}, ${oof.filter((x) => isHardHam(x.m)).length}). Precision: spam share of the messages it fires on. Without it: with the chosen bands, how many spam (TP) and hard/easy ham (FP) would no longer reach ${spamAt}.`,
    '',
    '| rule | points | spam | easy ham | hard ham | precision | % of spam | % of hard ham | without it: TP lost | FP hard gone | FP easy gone |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const nSpam = oof.filter((x) => x.m.spam).length;
  const nHard = oof.filter((x) => isHardHam(x.m)).length;
  for (const rule of RULES) {
    const on = oof.filter((x) => x.rules.includes(rule.name));
    const s = on.filter((x) => x.m.spam).length;
    const h = on.filter((x) => isHardHam(x.m)).length;
    const e = on.length - s - h;
    let tpLost = 0;
    let fpHard = 0;
    let fpEasy = 0;
    for (const x of on) {
      const before = scoreWith(bands, x.probability, x.rulePoints) >= spamAt;
      const after = scoreWith(bands, x.probability, x.rulePoints - rule.points) >= spamAt;
      if (!before || after) continue;
      if (x.m.spam) tpLost++;
      else if (isHardHam(x.m)) fpHard++;
      else fpEasy++;
    }
    const prec = on.length === 0 ? '–' : (s / on.length).toFixed(3);
    lines.push(
      `| ${rule.name} | ${rule.points.toFixed(1)} | ${s} | ${e} | ${h} | ${prec} | ${((100 * s) / nSpam).toFixed(1)} | ${((100 * h) / nHard).toFixed(1)} | ${tpLost} | ${fpHard} | ${fpEasy} |`,
    );
  }
  lines.push('', `### Out-of-fold false positives with the chosen bands (learned part only)`, '', '| kind | score | Bayes p | band | rules | header facts |', '|---|---|---|---|---|---|');
  const fps = oof
    .filter((x) => !x.m.spam && scoreWith(bands, x.probability, x.rulePoints) >= spamAt)
    .sort((a, b) => kindOf(a.m).localeCompare(kindOf(b.m)) || b.probability - a.probability);
  for (const x of fps) {
    lines.push(`| ${kindOf(x.m)} | ${scoreWith(bands, x.probability, x.rulePoints).toFixed(1)} | ${x.probability.toFixed(4)} | ${bayesBand(x.probability, bands).name} | ${x.rules.join(' ') || '–'} | ${x.facts} |`);
  }
  // Near misses: ham within 1.5 points of the threshold, the ones a rule change could tip over.
  const near = oof.filter((x) => !x.m.spam && scoreWith(bands, x.probability, x.rulePoints) >= spamAt - 1.5 && scoreWith(bands, x.probability, x.rulePoints) < spamAt);
  lines.push('', `Ham within 1.5 points below ${spamAt}: ${near.length} (${near.filter((x) => isHardHam(x.m)).length} hard).`);
  return lines.join('\n');
}
