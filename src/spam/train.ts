// Learning from files: the work behind `mailward learn --spam|--ham [--forget] PATH...`. Reads
// every message under the paths (sources.ts), learns or forgets each one through a batch, and
// returns counts for the summary line; progress is reported after every message.
import { isStoreUnavailable } from '../store/store.ts';
import type { ForgetOutcome, Label, LearnOutcome, SpamFilter } from './filter.ts';
import { readMessages } from './sources.ts';

export interface LearnCounts {
  /** Messages read. */
  readonly messages: number;
  /** Newly learned. */
  readonly learned: number;
  /** Learned before with the other label, now moved to this one. */
  readonly relearned: number;
  /** Learned before with this label: left as they were. */
  readonly already: number;
  /** --forget: counts taken back out. */
  readonly forgotten: number;
  /** --forget: never learned, nothing to take out. */
  readonly notLearned: number;
  /** Files not read (empty, too large). */
  readonly skipped: number;
  /** Paths or messages that could not be read or parsed. */
  readonly failed: number;
}

export interface LearnProgress extends LearnCounts {
  /** The message just handled. */
  readonly source: string;
}

export interface LearnSummary extends LearnCounts {
  readonly seconds: number;
  /** The first failures (at most 100), for the operator. */
  readonly failures: ReadonlyArray<{ readonly source: string; readonly error: string }>;
}

export interface LearnPathsOptions {
  /** Learn as spam or as ham (ignored with forget). */
  readonly as?: Label;
  /** Take the messages' counts back out instead of learning them. */
  readonly forget?: boolean;
  readonly onProgress?: (p: LearnProgress) => void;
  /** Messages per store write (default 500). */
  readonly batchSize?: number;
  /** Largest message read (default 32 MiB). */
  readonly maxBytes?: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Learns (or forgets) every message found under `paths`. A path that cannot be read counts as a
 * failure and the rest go on; a store that stops answering ends the run with its error, since
 * nothing further could be learned.
 */
export async function learnPaths(filter: SpamFilter, paths: readonly string[], opts: LearnPathsOptions): Promise<LearnSummary> {
  if (!opts.forget && opts.as !== 'spam' && opts.as !== 'ham') throw new Error('learnPaths: say what to learn the messages as: { as: "spam" } or { as: "ham" } (or { forget: true })');
  const t0 = performance.now();
  const c: Mutable<LearnCounts> = { messages: 0, learned: 0, relearned: 0, already: 0, forgotten: 0, notLearned: 0, skipped: 0, failed: 0 };
  const failures: Array<{ source: string; error: string }> = [];
  const fail = (source: string, err: unknown): void => {
    if (isStoreUnavailable(err)) throw err;
    c.failed++;
    if (failures.length < 100) failures.push({ source, error: err instanceof Error ? err.message : String(err) });
  };
  const batch = filter.batch(opts.batchSize ?? 500);
  const readOpts = {
    ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
    onSkip: (source: string, reason: string) => {
      c.skipped++;
      opts.onProgress?.({ ...c, source: `${source} (skipped: ${reason})` });
    },
  };
  for (const path of paths) {
    try {
      for await (const m of readMessages(path, readOpts)) {
        c.messages++;
        try {
          if (opts.forget) {
            const r: ForgetOutcome = await batch.forget(m.raw);
            if (r === 'forgotten') c.forgotten++;
            else c.notLearned++;
          } else {
            const r: LearnOutcome = await batch.learn(m.raw, opts.as!);
            c[r]++;
          }
        } catch (err) {
          fail(m.source, err);
        }
        opts.onProgress?.({ ...c, source: m.source });
      }
    } catch (err) {
      fail(path, err);
    }
  }
  await batch.flush();
  return { ...c, failures, seconds: (performance.now() - t0) / 1000 };
}

/** One line for the end of a run, e.g. "1200 messages: 1180 learned, 20 already learned (3.1 s)". */
export function formatSummary(s: LearnSummary): string {
  const parts: string[] = [];
  if (s.learned) parts.push(`${s.learned} learned`);
  if (s.relearned) parts.push(`${s.relearned} moved from the other label`);
  if (s.already) parts.push(`${s.already} already learned`);
  if (s.forgotten) parts.push(`${s.forgotten} forgotten`);
  if (s.notLearned) parts.push(`${s.notLearned} not learned before`);
  if (s.skipped) parts.push(`${s.skipped} skipped`);
  if (s.failed) parts.push(`${s.failed} failed`);
  return `${s.messages} message${s.messages === 1 ? '' : 's'}: ${parts.join(', ') || 'nothing to do'} (${s.seconds.toFixed(1)} s)`;
}
