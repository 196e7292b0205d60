// Queue depth and the oldest message for the dashboard and /metrics. A running server counts its
// queue's catalog (the numbers `queue list --summary` gives, read from memory at each call); until
// its start-up scan has catalogued the spool, and where no server runs, the spool folder is read
// without touching it (the read-only inspector). A full scan reads every message file, so its
// figures are cached, longer the longer the last scan took — which is why the dashboard once
// showed 0 queued with 3 in the queue.
import { inspectSpool } from '../../queue/inspect.ts';
import type { CatalogCounts } from '../../queue/catalog.ts';
import { isFinal } from '../../queue/envelope.ts';
import type { QueueFigures, QueueStatsSource } from '../../observe/metrics.ts';

export function scanQueue(spoolDir: string): QueueFigures {
  let depth = 0;
  let held = 0;
  let deferred = 0;
  let corrupt = 0;
  let oldest: { at: number; id: string } | undefined;
  for (const e of inspectSpool(spoolDir)) {
    if (!e.ok) {
      corrupt++;
      continue;
    }
    const m = e.message;
    const open = m.states.filter((s) => !isFinal(s));
    if (open.length === 0) continue; // finished; about to be removed
    if (m.held) held++;
    else {
      depth++;
      if (open.some((s) => s.status === 'deferred')) deferred++;
    }
    if (!oldest || m.envelope.receivedAt < oldest.at) oldest = { at: m.envelope.receivedAt, id: m.envelope.id };
  }
  return { depth, held, deferred, corrupt, oldestReceivedAt: oldest?.at ?? null, ...(oldest ? { oldestId: oldest.id } : {}) };
}

/** A cached source over `scanQueue`: at most one scan per `minAgeMs` (default 5 s), or 20× the last scan's time. */
export function spoolQueueStats(spoolDir: string, opts: { minAgeMs?: number; clock?: () => number } = {}): QueueStatsSource {
  const clock = opts.clock ?? Date.now;
  const minAge = opts.minAgeMs ?? 5000;
  let cached: { at: number; took: number; figures: QueueFigures } | undefined;
  return () => {
    const now = clock();
    if (cached && now - cached.at < Math.max(minAge, cached.took * 20)) return cached.figures;
    const start = Date.now();
    const figures = scanQueue(spoolDir);
    cached = { at: now, took: Date.now() - start, figures };
    return figures;
  };
}

/** The running queue as far as the figures need it (queue.ts Queue). */
export interface CountedQueue {
  counts(): CatalogCounts;
  readonly loadProgress: { readonly state: string };
}

/** The running server's queue figures: the catalog's counts once it is loaded, `meanwhile` before (the spool scan). */
export function catalogQueueStats(queue: CountedQueue, meanwhile: QueueStatsSource): QueueStatsSource {
  return () => {
    if (queue.loadProgress.state !== 'loaded') return meanwhile();
    const c = queue.counts();
    return { depth: c.messages - c.held, held: c.held, deferred: c.deferred, oldestReceivedAt: c.oldestReceivedAt, ...(c.oldestId !== undefined ? { oldestId: c.oldestId } : {}) };
  };
}
