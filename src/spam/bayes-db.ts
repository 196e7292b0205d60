// Bayes token counts in the shared Store, laid out for few round trips per message, so that
// several nodes can share one database (SQLite on one host, Redis across hosts).
//
// Key layout (relative to the store's key prefix; `p` is the filter's prefix, default "bayes:"):
//   p+"seed"        string  random seed of the token hash (made once, kept forever)
//   p+"n"           hash    {spam, ham}: how many messages were learned as each
//   p+"t:"+b        hash    b = 0…3: token field → spam·2^26 + ham (both counts in one integer)
//   p+"a:"+b        hash    same fields → day (since 1970) the token was last learned
//   p+"seen:"+sha1  string  "s" | "h": a message already learned, and as what
// Scoring a message is at most 5 reads (totals and one hmget per bucket), sent together and
// shared with other messages scored in the same turn of the event loop (read-batch.ts); a
// short-lived cache of counts (cache.ts) answers most tokens without a read.
import { randomInt } from 'node:crypto';
import type { Store } from '../store/store.ts';
import type { TokenCounts } from './bayes.ts';
import { CountCache, type CacheOptions } from './cache.ts';
import { BUCKETS, idOfHash, tokenHashes } from './hash.ts';
import { HashReadBatcher } from './read-batch.ts';

/** Learned as spam or as ham. */
export type Label = 'spam' | 'ham';

// Ham counts take the low 26 bits; spam counts the bits above (up to 2^27), which keeps the
// packed value a safe integer and lets one hincrMany move either count.
const SPAM_UNIT = 2 ** 26;
const MAX_COUNT = SPAM_UNIT - 1;
const DAY_MS = 86_400_000;

export function unpack(v: number): TokenCounts {
  if (v <= 0) return { spam: 0, ham: 0 };
  return { spam: Math.floor(v / SPAM_UNIT), ham: v % SPAM_UNIT };
}

/** unpack() over many packed counts at once, into two parallel arrays. */
export function unpackAll(packed: ArrayLike<number>): { spam: Float64Array; ham: Float64Array } {
  const spam = new Float64Array(packed.length);
  const ham = new Float64Array(packed.length);
  for (let i = 0; i < packed.length; i++) {
    const v = packed[i]!;
    if (v <= 0) continue;
    spam[i] = Math.floor(v / SPAM_UNIT);
    ham[i] = v % SPAM_UNIT;
  }
  return { spam, ham };
}

export function packDelta(label: Label, by: number): number {
  return label === 'spam' ? by * SPAM_UNIT : by;
}

export interface Totals {
  readonly nspam: number;
  readonly nham: number;
}

/** Token count changes gathered per bucket, written with one hincrMany per bucket. */
export class Deltas {
  readonly buckets: Array<Map<string, number>> = Array.from({ length: BUCKETS }, () => new Map<string, number>());
  /** The token hashes whose counts change (their cached counts are dropped once written). */
  readonly touched: number[] = [];
  nspam = 0;
  nham = 0;
  messages = 0;

  /** One message's tokens (by hash) counted once more (by 1) or once less (by -1) as `label`. */
  add(hashes: ArrayLike<number>, label: Label, by: 1 | -1): void {
    const d = packDelta(label, by);
    for (let i = 0; i < hashes.length; i++) {
      const h = hashes[i]!;
      const id = idOfHash(h);
      const m = this.buckets[id.bucket]!;
      m.set(id.field, (m.get(id.field) ?? 0) + d);
      this.touched.push(h);
    }
    if (label === 'spam') this.nspam += by;
    else this.nham += by;
    this.messages++;
  }

  get empty(): boolean {
    return this.messages === 0;
  }
}

export interface ExpireOptions {
  /** Tokens learned in fewer than this many messages … (default 2: seen once) */
  readonly rareBelow?: number;
  /** … and not learned for this many days are dropped (default 30). */
  readonly maxAgeDays?: number;
  /** When more tokens than this remain, the least recently learned go (the rarest of a day
   * first) until 3/4 of it are left (default 500 000). */
  readonly maxTokens?: number;
}

export interface ExpireResult {
  readonly before: number;
  readonly after: number;
  readonly dropped: number;
}

export interface BayesDbOptions {
  /** Key prefix (default "bayes:"). */
  readonly prefix?: string;
  readonly clock?: () => number;
  /** Cache of token counts; false for none (every score reads the store). */
  readonly cache?: CacheOptions | false;
}

const EMPTY_READ: Promise<number[]> = Promise.resolve([]);

// Expiry groups tokens by (last-learned day, total count) in one sortable number.
const COUNT_SPAN = 2 ** 20;
function groupKey(day: number, c: TokenCounts): number {
  return Math.max(0, day) * COUNT_SPAN + Math.min(c.spam + c.ham, COUNT_SPAN - 1);
}

export class BayesDb {
  private seed: number | undefined;
  private readonly prefix: string;
  private readonly clock: () => number;
  private readonly cache: CountCache | undefined;
  private cachedTotals: { value: Totals; at: number } | undefined;
  private readonly totalsTtl: number;
  private readonly reads: HashReadBatcher;

  constructor(
    readonly store: Store,
    opts: BayesDbOptions = {},
  ) {
    this.prefix = opts.prefix ?? 'bayes:';
    this.clock = opts.clock ?? Date.now;
    this.cache = opts.cache === false ? undefined : new CountCache(opts.cache ?? {}, this.clock);
    this.totalsTtl = opts.cache === false ? 0 : Math.min(5_000, opts.cache?.ttlMs ?? 30_000);
    this.reads = new HashReadBatcher(store);
  }

  /** Reads (or, on first use, makes) the hash seed. Every other method needs it. */
  async open(): Promise<number> {
    if (this.seed !== undefined) return this.seed;
    const key = this.prefix + 'seed';
    let v = await this.store.get(key);
    if (v === null) {
      await this.store.setIfAbsent(key, String(randomInt(1, 2 ** 31)));
      v = await this.store.get(key);
    }
    const seed = Number(v);
    if (!Number.isSafeInteger(seed)) throw new Error(`the Bayes seed in the store key '${key}' is damaged (${String(v)}); delete the bayes:* keys and learn again`);
    this.seed = seed;
    return seed;
  }

  /** The tokens' hashes for this database's seed (call open() first). */
  hashes(tokens: readonly string[]): Float64Array {
    return tokenHashes(tokens, this.seedValue());
  }

  /** The hash seed (after open()). */
  seedValue(): number {
    if (this.seed === undefined) throw new Error('BayesDb.open() must be called first');
    return this.seed;
  }

  /** Messages learned as spam and as ham (read from the store, never from the cache). */
  async totals(): Promise<Totals> {
    const [nspam = 0, nham = 0] = await this.store.hmget(this.prefix + 'n', ['spam', 'ham']);
    const value = { nspam, nham };
    if (this.totalsTtl > 0) this.cachedTotals = { value, at: this.clock() };
    return value;
  }

  private async recentTotals(): Promise<Totals> {
    const t = this.cachedTotals;
    if (t && this.clock() - t.at < this.totalsTtl) return t.value;
    return this.totals();
  }

  /** Counts of each token (by hash; 0/0 when unknown) and the totals, in one batch of parallel
   * reads; `fresh` bypasses the cache. */
  async counts(hashes: ArrayLike<number>, fresh = false): Promise<{ counts: TokenCounts[]; totals: Totals }> {
    const { packed, totals } = await this.packedCounts(hashes, fresh);
    return { counts: Array.from(packed, unpack), totals };
  }

  /** As counts(), with each token's counts packed in one number (spam·2^26 + ham; see unpack):
   * no object per token on the scoring path. */
  async packedCounts(hashes: ArrayLike<number>, fresh = false): Promise<{ packed: Float64Array; totals: Totals }> {
    const cache = fresh ? undefined : this.cache;
    cache?.tick();
    const packed = new Float64Array(hashes.length);
    // Misses, grouped by bucket: one hmget per bucket that has any.
    let perBucket: string[][] | undefined;
    let slots: number[][] | undefined;
    for (let i = 0; i < hashes.length; i++) {
      const h = hashes[i]!;
      const hit = cache?.get(h);
      if (hit !== undefined) {
        packed[i] = hit;
        continue;
      }
      perBucket ??= Array.from({ length: BUCKETS }, () => []);
      slots ??= Array.from({ length: BUCKETS }, () => []);
      const id = idOfHash(h);
      perBucket[id.bucket]!.push(id.field);
      slots[id.bucket]!.push(i);
    }
    const totalsRead = fresh ? this.totals() : this.recentTotals();
    if (!perBucket || !slots) return { packed, totals: await totalsRead };
    // Scoring reads are coalesced with other messages' (read-batch.ts); a fresh read (taking a
    // message back out) goes alone and at once.
    const read = (b: number, fields: string[]): Promise<number[]> => (fields.length === 0 ? EMPTY_READ : fresh ? this.store.hmget(this.bucketKey(b), fields) : this.reads.read(this.bucketKey(b), fields));
    const [totals, ...values] = await Promise.all([totalsRead, ...perBucket.map((fields, b) => read(b, fields))]);
    for (let b = 0; b < values.length; b++) {
      const vals = values[b]!;
      const s = slots[b]!;
      for (let j = 0; j < s.length; j++) {
        const v = vals[j] ?? 0;
        const i = s[j]!;
        packed[i] = v;
        cache?.set(hashes[i]!, v);
      }
    }
    return { packed, totals };
  }

  /** Applies gathered deltas: counts, totals and last-learned days. */
  async apply(d: Deltas): Promise<void> {
    if (d.empty) return;
    if (d.nspam > 0 || d.nham > 0) {
      // Both counts share one integer per token; a count past the ham field would spill into
      // the spam count. No token count exceeds its total, so checking the totals is enough.
      const t = await this.totals();
      if (t.nspam + d.nspam > MAX_COUNT || t.nham + d.nham > MAX_COUNT) {
        throw new Error(`the Bayes database holds ${t.nspam} spam and ${t.nham} ham messages, the most it can count is ${MAX_COUNT} of each; forget old messages (mailward learn --forget) or start a new database (store key prefix bayes:) before learning more`);
      }
    }
    const day = Math.floor(this.clock() / DAY_MS);
    await Promise.all(
      d.buckets.map(async (m, b) => {
        const entries = [...m].filter(([, v]) => v !== 0);
        if (entries.length === 0) return;
        await this.store.hincrMany(this.bucketKey(b), entries);
        // Last-learned day of the tokens that gained counts. The store can only add, so read
        // the old day first; two nodes racing here only move a day a little too far.
        const learned = entries.filter(([, v]) => v > 0).map(([f]) => f);
        if (learned.length === 0) return;
        const akey = this.atimeKey(b);
        const old = await this.store.hmget(akey, learned);
        const moves: Array<[string, number]> = [];
        learned.forEach((f, i) => {
          const was = old[i] ?? 0;
          if (was < day) moves.push([f, day - was]);
        });
        if (moves.length > 0) await this.store.hincrMany(akey, moves);
      }),
    );
    const totals: Array<[string, number]> = [];
    if (d.nspam !== 0) totals.push(['spam', d.nspam]);
    if (d.nham !== 0) totals.push(['ham', d.nham]);
    if (totals.length > 0) await this.store.hincrMany(this.prefix + 'n', totals);
    // What this node learns shows in its next score at once (other nodes': after the cache TTL).
    this.cachedTotals = undefined;
    if (this.cache) for (const t of d.touched) this.cache.delete(t);
  }

  /** Deltas that take one message's tokens out of `label`, for tokens that still hold a count
   * there (a token expired since, or shared by hash, is not driven below zero). */
  async unlearnDeltas(hashes: ArrayLike<number>, label: Label, into: Deltas): Promise<void> {
    const { counts } = await this.counts(hashes, true);
    const keep: number[] = [];
    for (let i = 0; i < hashes.length; i++) {
      const c = counts[i]!;
      if (label === 'spam' ? c.spam > 0 : c.ham > 0) keep.push(hashes[i]!);
    }
    into.add(keep, label, -1);
  }

  async seen(digest: string): Promise<Label | null> {
    const v = await this.store.get(this.prefix + 'seen:' + digest);
    return v === 's' ? 'spam' : v === 'h' ? 'ham' : null;
  }

  /** Marks a message learned; false when it was marked already (by this or another node). */
  async claim(digest: string, label: Label): Promise<boolean> {
    return this.store.setIfAbsent(this.prefix + 'seen:' + digest, label === 'spam' ? 's' : 'h');
  }

  async mark(digest: string, label: Label): Promise<void> {
    await this.store.set(this.prefix + 'seen:' + digest, label === 'spam' ? 's' : 'h');
  }

  async unmark(digest: string): Promise<void> {
    await this.store.del(this.prefix + 'seen:' + digest);
  }

  /** Number of distinct tokens held (reads every bucket: for statistics, not the hot path). */
  async tokenCount(): Promise<number> {
    let n = 0;
    for (let b = 0; b < BUCKETS; b++) n += (await this.store.hgetall(this.bucketKey(b))).size;
    return n;
  }

  /**
   * Drops rare tokens not learned for a while, bucket by bucket (SpamAssassin's bayes expiry,
   * simplified). The Store has no field delete, so a bucket is rewritten: counts that another
   * node adds to that bucket between the read and the rewrite (milliseconds) are lost, which
   * costs a little accuracy and nothing else.
   */
  async expire(opts: ExpireOptions = {}): Promise<ExpireResult> {
    const rareBelow = opts.rareBelow ?? 2;
    const maxAgeDays = opts.maxAgeDays ?? 30;
    const maxTokens = opts.maxTokens ?? 500_000;
    const today = Math.floor(this.clock() / DAY_MS);
    const ageCutoff = today - maxAgeDays; // rare tokens last learned before this day go
    // First pass: how many tokens of each (last-learned day, count), to place the cut.
    let before = 0;
    const groups = new Map<number, number>();
    for (let b = 0; b < BUCKETS; b++) {
      const counts = await this.store.hgetall(this.bucketKey(b));
      const days = await this.store.hgetall(this.atimeKey(b));
      before += counts.size;
      for (const [f, v] of counts) {
        const k = groupKey(days.get(f) ?? 0, unpack(v));
        groups.set(k, (groups.get(k) ?? 0) + 1);
      }
    }
    const isRareOld = (k: number): boolean => Math.floor(k / COUNT_SPAN) < ageCutoff && k % COUNT_SPAN < rareBelow;
    let left = before;
    for (const [k, n] of groups) if (isRareOld(k)) left -= n;
    // Still too many: drop the least recently learned tokens, the rarest of a day first, down to
    // 3/4 of the limit so that the next expiry is not due at once (SpamAssassin keeps that
    // margin too). Groups go whole, so the cut may land a little below the target.
    let limitKey = -1;
    if (left > maxTokens) {
      const target = Math.floor(maxTokens * 0.75);
      for (const k of [...groups.keys()].sort((x, y) => x - y)) {
        if (left <= target) break;
        if (!isRareOld(k)) left -= groups.get(k)!;
        limitKey = k;
      }
    }
    const drops = (day: number, c: TokenCounts): boolean => {
      const k = groupKey(day, c);
      return isRareOld(k) || k <= limitKey;
    };
    let dropped = 0;
    for (let b = 0; b < BUCKETS; b++) {
      const key = this.bucketKey(b);
      const akey = this.atimeKey(b);
      const counts = await this.store.hgetall(key);
      const days = await this.store.hgetall(akey);
      const keep: Array<[string, number]> = [];
      const keepDays: Array<[string, number]> = [];
      let drop = 0;
      for (const [f, v] of counts) {
        const d = days.get(f) ?? 0;
        if (v <= 0 || drops(d, unpack(v))) {
          drop++;
          continue;
        }
        keep.push([f, v]);
        if (d > 0) keepDays.push([f, d]);
      }
      // Day entries of tokens that no longer exist go too.
      if (drop === 0 && days.size <= counts.size) continue;
      dropped += drop;
      await this.store.del(key);
      await this.store.del(akey);
      for (let i = 0; i < keep.length; i += 5000) await this.store.hincrMany(key, keep.slice(i, i + 5000));
      for (let i = 0; i < keepDays.length; i += 5000) await this.store.hincrMany(akey, keepDays.slice(i, i + 5000));
    }
    this.cache?.clear();
    return { before, after: before - dropped, dropped };
  }

  /** Forgets cached counts (after another process changed the database wholesale). */
  dropCache(): void {
    this.cache?.clear();
    this.cachedTotals = undefined;
  }

  private bucketKey(b: number): string {
    return `${this.prefix}t:${b.toString(16)}`;
  }

  private atimeKey(b: number): string {
    return `${this.prefix}a:${b.toString(16)}`;
  }
}
