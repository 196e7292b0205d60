// The operator's queue commands (postsuper-style): hold, release, delete, flush and requeue, by
// id, by filter or for everything. Runs inside the server (asked over the control socket, with the
// live schedule) or, when no server runs, in the CLI on a spool it opened itself (no schedule).
import type { Logger } from '../observe/log.ts';
import { isQueueId } from '../core/ids.ts';
import type { Queue } from './queue.ts';
import { messageDueAt } from './schedule.ts';
import type { RecipientState } from './envelope.ts';
import type { Spool, SpoolArea, SpooledMessage, StateUpdate } from './spool.ts';
import { compileFilter, type QueueFilter } from './filter.ts';

export type AdminOp = 'hold' | 'release' | 'delete' | 'flush' | 'requeue';
export const ADMIN_OPS: readonly AdminOp[] = ['hold', 'release', 'delete', 'flush', 'requeue'];

/** Which messages: these ids, or every message matching `filter` (with `all`, the filter may be empty). */
export interface Selection {
  readonly ids?: readonly string[];
  readonly filter?: QueueFilter;
  readonly all?: boolean;
}

export interface AdminResult {
  /** Messages selected. */
  matched: number;
  /** Messages the command changed. */
  changed: number;
  /** Ids given that are not in the spool (or not in the folder the command works on). */
  missing: number;
}

/** Where each command finds its messages: hold only from the queue, release only from hold. */
const AREAS: Record<AdminOp, readonly SpoolArea[]> = {
  hold: ['queue'],
  release: ['hold'],
  delete: ['queue', 'hold'],
  flush: ['queue'],
  requeue: ['queue'],
};

/**
 * Messages worked on at once. A removal or move is one metadata operation each, and where the
 * file system makes those slow (a file long written back to disk: ~1.5 ms each on the test VM)
 * only overlapping them in the thread pool keeps 300,000 of them from taking minutes.
 */
const PARALLEL = 64;
const PROGRESS_EVERY_MS = 500;

export class QueueAdmin {
  readonly #spool: Spool;
  readonly #queue: Queue | undefined;
  readonly #log: Logger;

  /** `queue` is the running server's schedule; undefined when the CLI works on a stopped server's spool. */
  constructor(spool: Spool, queue: Queue | undefined, log: Logger) {
    this.#spool = spool;
    this.#queue = queue;
    this.#log = log;
  }

  async run(op: AdminOp, sel: Selection, progress?: (r: AdminResult) => void): Promise<AdminResult> {
    const result: AdminResult = { matched: 0, changed: 0, missing: 0 };
    // A counting gate, not Promise.race over the pending set: that would attach a handler to
    // every pending promise for every message (hundreds of thousands of times).
    let running = 0;
    let wake: (() => void) | undefined;
    let drained: (() => void) | undefined;
    let lastProgress = Date.now();
    const submit = async (m: SpooledMessage, area: SpoolArea): Promise<void> => {
      result.matched++;
      running++;
      void this.#apply(op, m, area)
        .then(
          (changed) => {
            if (changed) result.changed++;
          },
          (err: unknown) => this.#log.error({ event: 'queue-admin-error', op, queueId: m.envelope.id, err }, `queue ${op} failed for one message`),
        )
        .finally(() => {
          running--;
          const w = wake;
          wake = undefined;
          w?.();
          if (running === 0) drained?.();
        });
      if (running >= PARALLEL) await new Promise<void>((r) => (wake = r));
      if (progress && Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = Date.now();
        progress({ ...result });
      }
    };
    if (sel.ids !== undefined && sel.ids.length > 0) {
      for (const id of sel.ids) {
        const found = isQueueId(id) ? await this.#find(id, AREAS[op]) : undefined;
        if (found) await submit(found.message, found.area);
        else result.missing++;
      }
    } else {
      if (!sel.all && !sel.filter) throw new Error('no messages selected: give ids, a filter, or all');
      const match = compileFilter(sel.filter ?? {});
      for (const area of AREAS[op]) {
        for await (const m of this.#spool.list(area)) {
          if (match(m.envelope, m.states, area === 'hold')) await submit(m, area);
        }
      }
    }
    if (running > 0) await new Promise<void>((r) => (drained = r));
    this.#log.info({ event: 'queue-admin', op, ...result, ...(sel.ids ? { ids: sel.ids.length } : {}), ...(sel.filter ? { filter: sel.filter } : {}) }, `queue ${op}: ${result.changed} of ${result.matched} message(s)`);
    return result;
  }

  async #find(id: string, areas: readonly SpoolArea[]): Promise<{ message: SpooledMessage; area: SpoolArea } | undefined> {
    for (const area of areas) {
      const message = await this.#spool.get(id, area);
      if (message) return { message, area };
    }
    return undefined;
  }

  async #apply(op: AdminOp, m: SpooledMessage, area: SpoolArea): Promise<boolean> {
    const id = m.envelope.id;
    const q = this.#queue;
    switch (op) {
      case 'hold':
      case 'delete': {
        // No delivery pass may be under way while the file moves or goes: its state records would
        // be lost and its recipients delivered again.
        if (area === 'queue') await q?.withdraw(id);
        try {
          const done = op === 'hold' ? await this.#spool.move(id, 'queue', 'hold') : await this.#spool.discard(id, area);
          if (done) this.#log.info({ event: 'queue-admin', op, queueId: id, from: m.envelope.mailFrom }, op === 'hold' ? 'put on hold' : 'deleted by the operator');
          return done;
        } finally {
          if (area === 'queue') q?.restore(id);
        }
      }
      case 'release': {
        const done = await this.#spool.move(id, 'hold', 'queue');
        if (done) {
          this.#log.info({ event: 'queue-admin', op, queueId: id }, 'released from hold');
          const due = messageDueAt(m.states, Date.now());
          if (due !== undefined) q?.enqueue(id, due);
        }
        return done;
      }
      case 'flush': {
        if (q) {
          // Not durable on purpose: a flush is "try now", and a restart tries everything anyway.
          q.enqueue(id, Date.now(), false, true);
          return true;
        }
        // No server: make the retry time durable, so the next start tries these at once.
        return this.#rewrite(m, (s) => (s.status === 'deferred' ? { ...s, nextAttemptAt: Date.now() } : undefined));
      }
      case 'requeue': {
        await q?.withdraw(id);
        try {
          // The retry history is forgotten: backoff starts again from the minimum, now.
          const changed = await this.#rewrite(m, (s) => (s.status === 'deferred' ? { status: 'pending', attempts: 0, ...(s.lastReply ? { lastReply: s.lastReply } : {}), updatedAt: Date.now() } : undefined));
          return changed;
        } finally {
          q?.restore(id);
          q?.enqueue(id, Date.now());
        }
      }
    }
  }

  /** Appends one state record with the recipients `change` rewrites; false when none changes. */
  async #rewrite(m: SpooledMessage, change: (s: RecipientState) => RecipientState | undefined): Promise<boolean> {
    const updates: StateUpdate[] = [];
    m.states.forEach((s, index) => {
      const next = change(s);
      if (next) updates.push({ index, state: next });
    });
    if (updates.length === 0) return false;
    await this.#spool.markRecipients(m.envelope.id, updates);
    return true;
  }
}
