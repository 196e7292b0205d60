// Queue depth and the oldest message, read from the spool folder without touching it (the
// read-only inspector), for the dashboard and /metrics. A full scan reads every message file, so
// the figures are cached, longer the longer the last scan took.
import { inspectSpool } from '../../queue/inspect.ts';
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
