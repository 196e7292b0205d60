// The boundaries the admin API acts through, implemented elsewhere and handed in by the
// composition root: queue actions (the queue's own admin commands) and the outbound guard's
// breakers. Without them the API still shows everything, and its action endpoints answer 501.
import type { QueueSummary } from '../../queue/admin.ts';
import type { QueueFilter } from '../../queue/filter.ts';
import type { MessageDetail } from '../../queue/message-detail.ts';
import type { OutboundState } from '../../delivery/outbound-switch.ts';

/** What a queue action did (the shape of the queue admin's result). */
export interface QueueActionResult {
  readonly matched: number;
  readonly changed: number;
  readonly missing: number;
}

export interface QueueControl {
  /** Keeps a queued message from being delivered until released. */
  hold(id: string): Promise<QueueActionResult>;
  release(id: string): Promise<QueueActionResult>;
  delete(id: string): Promise<QueueActionResult>;
  /** Tries every queued message now. */
  flush(): Promise<QueueActionResult>;
}

export interface BreakerStatus {
  /** "global", "login:alice@example.org", "client:192.0.2.7" … */
  readonly name: string;
  readonly open: boolean;
  /** Why it tripped. */
  readonly reason?: string;
  /** When it tripped (ms). */
  readonly since?: number;
  /** Anything else worth showing (figures, limits), flat. */
  readonly detail?: Readonly<Record<string, string | number | boolean>>;
}

export interface GuardControl {
  status(): Promise<readonly BreakerStatus[]>;
  /** Reopens the named breaker; false (or a throw) when there is no such breaker. */
  release(name: string): Promise<void | boolean>;
  /** The guard's early warnings of this hour and the last, newest first (src/guard/warnings.ts). */
  warnings?(): Promise<ReadonlyArray<{ readonly name: string; readonly kind: string; readonly reason: string; readonly at: number }>>;
}

/** The users list (the directory's `listUsers`). */
export interface UserList {
  listUsers(): ReadonlyArray<{ readonly address: string; readonly created: Date; readonly disabled: boolean }>;
}

/** The queue admin (src/queue/admin.ts) as the API's QueueControl. */
export function queueControlFrom(admin: { run(op: 'hold' | 'release' | 'delete' | 'flush', sel: { ids?: readonly string[]; all?: boolean }): Promise<QueueActionResult> }): QueueControl {
  return {
    hold: (id) => admin.run('hold', { ids: [id] }),
    release: (id) => admin.run('release', { ids: [id] }),
    delete: (id) => admin.run('delete', { ids: [id] }),
    flush: () => admin.run('flush', { all: true }),
  };
}

/** The outbound guard (src/guard/guard.ts) as the API's GuardControl: every breaker it lists is open. */
export function guardControlFrom(guard: {
  status(): Promise<{ readonly breakers: ReadonlyArray<{ readonly name: string; readonly reason: string; readonly trippedAt: number; readonly figures: Readonly<Record<string, number | string>> }> }>;
  release(name: string, by?: string): Promise<unknown>;
  readonly warnings?: { list(now: number): Promise<ReadonlyArray<{ readonly name: string; readonly kind: string; readonly reason: string; readonly at: number }>> };
}): GuardControl {
  const w = guard.warnings;
  return {
    ...(w ? { warnings: () => w.list(Date.now()) } : {}),
    status: async () => (await guard.status()).breakers.map((b) => ({ name: b.name, open: true, reason: b.reason, since: b.trippedAt, detail: b.figures })),
    release: async (name) => (await guard.release(name, 'admin-api')) !== undefined,
  };
}

/** The incident console's view of the queue: groups from the catalog, counts, bulk commands, one message. */
export interface QueueConsole {
  summarize(filter: QueueFilter, top: number): Promise<QueueSummary>;
  /** How many messages `op` would work on (the confirmation), changing nothing. */
  count(op: 'hold' | 'release' | 'delete', filter: QueueFilter): Promise<number>;
  /** One bulk command; the queue logs one summary line naming `operator`. */
  bulk(op: 'hold' | 'release' | 'delete', filter: QueueFilter, operator: string): Promise<QueueActionResult>;
  message(id: string): Promise<MessageDetail | undefined>;
}

/** The queue admin (src/queue/admin.ts) and one-message reads as the console's QueueConsole. */
export function queueConsoleFrom(
  admin: {
    summarize(filter: QueueFilter, top: number): Promise<QueueSummary>;
    count(op: 'hold' | 'release' | 'delete', sel: { filter: QueueFilter }): Promise<number>;
    run(op: 'hold' | 'release' | 'delete', sel: { filter: QueueFilter; operator: string }): Promise<QueueActionResult>;
  },
  message: (id: string) => Promise<MessageDetail | undefined>,
): QueueConsole {
  return {
    summarize: (filter, top) => admin.summarize(filter, top),
    count: (op, filter) => admin.count(op, { filter }),
    bulk: (op, filter, operator) => admin.run(op, { filter, operator }),
    message,
  };
}

/** "Stop all outbound" (src/delivery/outbound-switch.ts): one persisted state, changed and logged there. */
export interface OutboundControl {
  status(): Promise<OutboundState> | OutboundState;
  stop(by: string, reason?: string): Promise<OutboundState>;
  start(by: string): Promise<OutboundState>;
}
