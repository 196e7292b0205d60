// The spam filter: reads a message once (MIME, tokens, rule facts), asks the Bayes database for
// the counts of its tokens in one batch, and sums the Bayes band's points and the rules' points
// into one score. Learning and forgetting go through the same reading, deduplicated by digest.
import type { Store } from '../store/store.ts';
import { DEFAULT_BAYES, classifyCounts, type BayesParams, type Clue } from './bayes.ts';
import { BayesDb, Deltas, unpackAll, type ExpireOptions, type ExpireResult, type Label, type Totals } from './bayes-db.ts';
import { analyzeData, toAnalysis, type Analysis } from './analysis.ts';
import type { AnalysisPool } from './analysis-pool.ts';
import type { CacheOptions } from './cache.ts';
import type { RuleContext, RuleHit } from './rules.ts';

export type { Label, Analysis };

export interface SpamFilterOptions {
  readonly store: Store;
  /** Key prefix of the Bayes data in the store (default "bayes:"). */
  readonly prefix?: string;
  /** Our mail domains, for FORGED_OWN_DOMAIN. */
  readonly ourDomains?: readonly string[];
  /** Bayes is consulted once this many spam and this many ham messages are learned (default
   * 200 each, as SpamAssassin's bayes_min_spam_num / bayes_min_ham_num). */
  readonly minLearned?: number;
  readonly bayes?: Partial<BayesParams>;
  /** Bayes bands (probability → points); default BAYES_BANDS. */
  readonly bands?: readonly BayesBand[];
  /** Worker threads that read messages off the event loop (score() and analyzeAsync() use
   * them); without, messages are read on the calling thread. */
  readonly pool?: AnalysisPool;
  /** Bytes of each message read (default 512 KiB). */
  readonly maxBytes?: number;
  readonly clock?: () => number;
  /** In-process cache of token counts (default 200 000 entries for 30 s); false for none. */
  readonly cache?: CacheOptions | false;
}

// A message this small is read on the calling thread: reading it (~55 µs for 4 KB) costs about
// what handing it to a worker and back does (postMessage, structured clone, two wake-ups), which
// was 5 % of the main thread at 4 KB × 50 (bench/smtp). Larger ones still go to the pool, so a big
// HTML spam never stalls the sessions.
const INLINE_BYTES = 8 * 1024;

export interface BayesBand {
  /** The band holds probabilities from `from` (inclusive) up to the next band's `from`. */
  readonly from: number;
  readonly name: string;
  readonly points: number;
}

// Points per band of the Bayes probability. The chi-square combination is sure of itself (most
// messages land below 0.01 or above 0.99), so the outer bands decide and the middle ones nudge.
// BAYES_60 … BAYES_99 were chosen by 5-fold cross-validation on the benchmark's learned part only
// (bench/spam/run.ts --choose-bands; the table is in docs/decisions/0005-spam-filter.md): only from
// 0.999 does Bayes alone mark spam; below that, rules must make up the difference, which keeps
// newsletters and other hard ham that Bayes is sure of out of the spam folder.
export const BAYES_BANDS: readonly BayesBand[] = [
  { from: 0, name: 'BAYES_00', points: -2.0 },
  { from: 0.01, name: 'BAYES_05', points: -1.0 },
  { from: 0.05, name: 'BAYES_20', points: -0.3 },
  { from: 0.2, name: 'BAYES_40', points: 0 },
  { from: 0.4, name: 'BAYES_50', points: 1.5 },
  { from: 0.6, name: 'BAYES_60', points: 2.5 },
  { from: 0.8, name: 'BAYES_80', points: 3.5 },
  { from: 0.95, name: 'BAYES_95', points: 4.0 },
  { from: 0.99, name: 'BAYES_99', points: 4.5 },
  { from: 0.999, name: 'BAYES_999', points: 6.0 },
];

export interface ScoreContext {
  /** Submitted by a logged-in user of this server (FORGED_OWN_DOMAIN does not apply). */
  readonly authenticated?: boolean;
}

export interface BayesOutcome {
  readonly probability: number;
  readonly band: string;
  readonly points: number;
  /** Distinct tokens in the message, and the strongest ones that decided. */
  readonly tokens: number;
  readonly clues: readonly Clue[];
}

export interface SpamResult {
  /** Rules' and Bayes's points summed. */
  readonly score: number;
  /** Every rule that fired, the Bayes band first (when Bayes was consulted). */
  readonly hits: readonly RuleHit[];
  /** Absent until enough messages are learned (see minLearned). */
  readonly bayes?: BayesOutcome;
  readonly totals: Totals;
}

export type LearnOutcome = 'learned' | 'relearned' | 'already';
export type ForgetOutcome = 'forgotten' | 'not-learned';

export class SpamFilter {
  readonly db: BayesDb;
  private readonly params: BayesParams;
  private readonly bands: readonly BayesBand[];
  private readonly pool: AnalysisPool | undefined;
  private readonly ourDomains: readonly string[];
  private readonly minLearned: number;
  private readonly maxBytes: number;
  private readonly clock: () => number;

  constructor(opts: SpamFilterOptions) {
    this.clock = opts.clock ?? Date.now;
    this.db = new BayesDb(opts.store, { prefix: opts.prefix ?? 'bayes:', ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.cache !== undefined ? { cache: opts.cache } : {}) });
    this.params = { ...DEFAULT_BAYES, ...opts.bayes };
    this.bands = [...(opts.bands ?? BAYES_BANDS)].sort((a, b) => a.from - b.from);
    this.pool = opts.pool;
    this.ourDomains = (opts.ourDomains ?? []).map((d) => d.toLowerCase());
    this.minLearned = opts.minLearned ?? 200;
    this.maxBytes = opts.maxBytes ?? 512 * 1024;
  }

  /** Reads a message on this thread: tokens, the rules that fired, and (on demand) the digest. */
  analyze(raw: Buffer | string, ctx: ScoreContext = {}): Analysis {
    return toAnalysis(analyzeData(raw, this.maxBytes, this.ruleContext(ctx)), raw, this.maxBytes);
  }

  /** Reads a message in the worker pool when there is one and the message is large, else on this thread. */
  async analyzeAsync(raw: Buffer | string, ctx: ScoreContext = {}): Promise<Analysis> {
    if (!this.pool || (typeof raw === 'string' ? raw.length : raw.byteLength) <= INLINE_BYTES) return this.analyze(raw, ctx);
    // The worker hashes the tokens as well, so it needs the database's seed.
    const seed = await this.db.open();
    return toAnalysis(await this.pool.run(raw, this.ruleContext(ctx), seed), raw, this.maxBytes);
  }

  async score(raw: Buffer | string, ctx: ScoreContext = {}): Promise<SpamResult> {
    return this.scoreAnalysis(await this.analyzeAsync(raw, ctx));
  }

  /** The Bayes band for the message's tokens plus the rules it was read with. */
  async scoreAnalysis(a: Analysis): Promise<SpamResult> {
    await this.db.open();
    const { packed, totals } = await this.db.packedCounts(this.hashesOf(a));
    const hits: RuleHit[] = [];
    let bayes: BayesOutcome | undefined;
    if (totals.nspam >= this.minLearned && totals.nham >= this.minLearned) {
      const { spam, ham } = unpackAll(packed);
      // The clues (and so the tokens' names) are made only if someone reads them.
      const r = classifyCounts(spam, ham, totals.nspam, totals.nham, this.params, a.tokenAt);
      const band = this.bandOf(r.probability);
      bayes = {
        probability: r.probability,
        band: band.name,
        points: band.points,
        tokens: a.tokenCount,
        get clues() {
          return r.clues;
        },
      };
      hits.push({ name: band.name, points: band.points, description: `Bayes spam probability ${formatProbability(r.probability)}` });
    }
    hits.push(...a.hits);
    const score = Math.round(hits.reduce((s, h) => s + h.points, 0) * 1000) / 1000;
    return { score, hits, totals, ...(bayes ? { bayes } : {}) };
  }

  /** Learns a message as spam or ham. A message learned before as the other label is moved. */
  async learn(raw: Buffer | string, as: Label): Promise<LearnOutcome> {
    return this.learnAnalysis(this.analyze(raw), as);
  }

  async learnAnalysis(a: Analysis, as: Label, pending?: Deltas): Promise<LearnOutcome> {
    await this.db.open();
    const hashes = this.hashesOf(a);
    const prev = await this.db.seen(a.digest);
    if (prev === as) return 'already';
    if (prev === null) {
      // The claim is atomic across nodes: of two nodes learning one message, one counts it.
      if (!(await this.db.claim(a.digest, as))) return 'already';
      if (pending) pending.add(hashes, as, 1);
      else {
        const d = new Deltas();
        d.add(hashes, as, 1);
        try {
          await this.db.apply(d);
        } catch (err) {
          // Counted nothing: let the message be learned again later (best effort).
          await this.db.unmark(a.digest).catch(() => undefined);
          throw err;
        }
      }
      return 'learned';
    }
    const d = new Deltas();
    await this.db.unlearnDeltas(hashes, prev, d);
    d.add(hashes, as, 1);
    await this.db.apply(d);
    await this.db.mark(a.digest, as);
    return 'relearned';
  }

  /** Takes a learned message's counts back out. */
  async forget(raw: Buffer | string): Promise<ForgetOutcome> {
    return this.forgetAnalysis(this.analyze(raw));
  }

  async forgetAnalysis(a: Analysis): Promise<ForgetOutcome> {
    await this.db.open();
    const prev = await this.db.seen(a.digest);
    if (prev === null) return 'not-learned';
    const d = new Deltas();
    await this.db.unlearnDeltas(this.hashesOf(a), prev, d);
    await this.db.apply(d);
    await this.db.unmark(a.digest);
    return 'forgotten';
  }

  /** A learner for many messages that writes counts every `size` messages instead of after each
   * one (far fewer store writes for bulk training). Call flush() at the end. If a flush fails,
   * the messages since the last flush stay marked as learned without their counts. */
  batch(size = 500): LearnBatch {
    return new LearnBatch(this, size);
  }

  async expire(opts?: ExpireOptions): Promise<ExpireResult> {
    await this.db.open();
    return this.db.expire(opts);
  }

  async totals(): Promise<Totals> {
    return this.db.totals();
  }

  /** The analysis's token hashes: from the worker that read it, or computed here (after open()). */
  private hashesOf(a: Analysis): Float64Array {
    return a.hashes ?? this.db.hashes(a.tokens);
  }

  private ruleContext(ctx: ScoreContext): RuleContext {
    return { ourDomains: this.ourDomains, authenticated: ctx.authenticated === true, now: this.clock() };
  }

  private bandOf(p: number): BayesBand {
    return bayesBand(p, this.bands);
  }
}

/** The band a Bayes probability falls in: the last band (sorted by `from`) whose `from` it
 * reaches, or the first band below every `from`. */
export function bayesBand(p: number, bands: readonly BayesBand[] = BAYES_BANDS): BayesBand {
  let band = bands[0]!;
  for (const b of bands) if (p >= b.from) band = b;
  return band;
}

export class LearnBatch {
  private pending = new Deltas();

  constructor(
    private readonly filter: SpamFilter,
    private readonly size: number,
  ) {}

  async learn(raw: Buffer | string, as: Label): Promise<LearnOutcome> {
    const a = this.filter.analyze(raw);
    const prev = await this.filter.db.seen(a.digest);
    // Moving a message between labels reads counts, so what is pending must be written first.
    if (prev !== null && prev !== as) await this.flush();
    const out = await this.filter.learnAnalysis(a, as, this.pending);
    if (this.pending.messages >= this.size) await this.flush();
    return out;
  }

  async forget(raw: Buffer | string): Promise<ForgetOutcome> {
    await this.flush();
    return this.filter.forgetAnalysis(this.filter.analyze(raw));
  }

  async flush(): Promise<void> {
    const d = this.pending;
    this.pending = new Deltas();
    await this.filter.db.apply(d);
  }
}

export function formatProbability(p: number): string {
  if (p >= 0.9999) return p >= 1 ? '1.0000' : '0.9999+';
  return p.toFixed(4);
}
