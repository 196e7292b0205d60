// The operator's queue commands (postsuper-style): hold, release, delete, flush and requeue, by id,
// filter or all. In the server they select from the queue's catalog; without one, the CLI reads the
// spool. Deletes go through the deletion journal (docs/decisions/0011-queue-delete-at-scale.md),
// holds through hold marks (holds.ts, docs/decisions/0025-queue-control.md); each command logs one
// summary line (count, selector, operator), not one line per message.
import { setImmediate as turn } from 'node:timers/promises';
import type { Logger } from '../observe/log.ts';
import { isQueueId } from '../core/ids.ts';
import type { Queue } from './queue.ts';
import { messageDueAt } from './schedule.ts';
import type { RecipientState } from './envelope.ts';
import type { Spool, SpooledMessage, StateUpdate } from './spool.ts';
import { createGate } from './gate.ts';
import { compileFilter, type QueueFilter } from './filter.ts';

export type AdminOp = 'hold' | 'release' | 'delete' | 'flush' | 'requeue';
export const ADMIN_OPS: readonly AdminOp[] = ['hold', 'release', 'delete', 'flush', 'requeue'];

/** Which messages: these ids, or every message matching `filter` (with `all`, the filter may be empty). */
export interface Selection {
  readonly ids?: readonly string[];
  readonly filter?: QueueFilter;
  readonly all?: boolean;
  /** Who asked (for the log line): a user name and uid from the CLI, or the dashboard's caller. */
  readonly operator?: string;
}

export interface AdminResult {
  /** Messages selected. */
  matched: number;
  /** Messages the command changed. */
  changed: number;
  /** Ids given that are not in the spool (or not in the folder the command works on). */
  missing: number;
  /**
   * Deleted messages whose files were still being removed in the background when the command
   * returned (they are deleted: hidden, never delivered). Absent when there are none.
   */
  removing?: number;
}

/** `queue list --summary` as the server answers it: counts, and the top senders and recipient domains. */
export interface QueueSummary {
  readonly messages: number;
  readonly held: number;
  readonly deferred: number;
  readonly pending: number;
  readonly toGo: number;
  readonly senders: ReadonlyArray<readonly [string, number]>;
  readonly sendersTotal: number;
  readonly domains: ReadonlyArray<readonly [string, number]>;
  readonly domainsTotal: number;
  /** By submitting login ("" for mail without one). */
  readonly logins: ReadonlyArray<readonly [string, number]>;
  readonly loginsTotal: number;
}

/** Where each command finds its messages: hold only from the queue, release only from hold. */
const AREAS: Record<AdminOp, ReadonlyArray<'queue' | 'hold'>> = {
  hold: ['queue'],
  release: ['hold'],
  delete: ['queue', 'hold'],
  flush: ['queue'],
  requeue: ['queue'],
};

/**
 * Messages worked on at once by hold, release and requeue. A move is one metadata operation each,
 * and where the file system makes those slow (a file long written back to disk) only overlapping
 * them in the thread pool keeps 300,000 of them from taking minutes. Also the pace of a delete's
 * file removal when no server runs (nothing else then needs the thread pool).
 */
const PARALLEL = 64;
/**
 * Messages per step of a command: one journal append (and fsync) per step of a delete, and the
 * in-memory work of a step (withdraw, catalog, audit lines) stays around 20 ms, so arriving mail
 * is not held up behind a command on 300,000 messages.
 */
const STEP = 4_096;
/** A delete of at most this many removes the files before it returns; more go in the background. */
const REMOVE_INLINE = 256;
/** Ids named in the summary line when the operator named at most this many. */
const LOG_IDS = 100;
const PROGRESS_EVERY_MS = 500;

/** One message a command works on: where it is, and what is known of it already. */
interface Target {
  readonly id: string;
  readonly area: 'queue' | 'hold';
  readonly from?: string;
  /** Read from disk already (no server, or an id the catalog does not know). */
  readonly message?: SpooledMessage;
}

// One command at a time per spool, also between the QueueAdmins of the control socket and the
// admin HTTP API: two commands moving and deleting the same files would race.
const running = new WeakMap<Spool, Promise<unknown>>();

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

  run(op: AdminOp, sel: Selection, progress?: (r: AdminResult) => void): Promise<AdminResult> {
    return this.#exclusive(() => this.#run(op, sel, progress));
  }

  /** How many messages `op` would work on (the delete confirmation), changing nothing. */
  count(op: AdminOp, sel: Selection): Promise<number> {
    return this.#exclusive(async () => {
      const tally: AdminResult = { matched: 0, changed: 0, missing: 0 };
      let n = 0;
      for await (const batch of this.#targets(op, sel, tally)) n += batch.length;
      return n;
    });
  }

  /**
   * `queue list --summary` from the running server's catalog: no file read. The `top` entries of
   * each list; beside a command under way (it reads memory only).
   */
  async summarize(filter: QueueFilter, top: number): Promise<QueueSummary> {
    const q = this.#queue;
    if (!q) throw new Error('no running queue to summarize; read the spool instead');
    await q.whenLoaded();
    const s = await q.summarize(filter, ['queue', 'hold']);
    const best = (m: Map<string, number>): Array<[string, number]> => [...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, top);
    return { messages: s.messages, held: s.held, deferred: s.deferred, pending: s.pending, toGo: s.toGo, senders: best(s.senders), sendersTotal: s.senders.size, domains: best(s.domains), domainsTotal: s.domains.size, logins: best(s.logins), loginsTotal: s.logins.size };
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    // Selections come from the catalog, so a command waits for the start-up scan to complete
    // (docs/decisions/0018-startup.md); the control socket tells the operator meanwhile.
    const p = (running.get(this.#spool) ?? Promise.resolve()).then(async () => {
      await this.#queue?.whenLoaded();
      return fn();
    });
    running.set(
      this.#spool,
      p.catch(() => undefined),
    );
    return p;
  }

  async #run(op: AdminOp, sel: Selection, progress?: (r: AdminResult) => void): Promise<AdminResult> {
    const result: AdminResult = { matched: 0, changed: 0, missing: 0 };
    const batches = this.#targets(op, sel, result);
    const t0 = performance.now();
    if (op === 'delete') await this.#delete(batches, result, progress);
    else if (op === 'hold') await this.#hold(batches, result, progress);
    else await this.#each(op, batches, result, progress);
    const selector = { ...(sel.ids ? { ids: sel.ids.length <= LOG_IDS ? sel.ids : sel.ids.length } : {}), ...(sel.filter ? { filter: sel.filter } : {}), ...(sel.all ? { all: true } : {}) };
    this.#log.info({ event: 'queue-admin', op, ...result, selector, operator: sel.operator ?? 'unknown', ms: Math.round(performance.now() - t0) }, `queue ${op}: ${result.changed} of ${result.matched} message(s) by ${sel.operator ?? 'an unnamed operator'}`);
    return result;
  }

  /**
   * The messages selected, in batches. On a live server from the queue's catalog (no file read);
   * without one, by reading the spool. Ids the catalog does not know are looked up on disk.
   */
  async *#targets(op: AdminOp, sel: Selection, result: AdminResult): AsyncGenerator<Target[]> {
    const areas = AREAS[op];
    const q = this.#queue;
    if (sel.ids !== undefined && sel.ids.length > 0) {
      let batch: Target[] = [];
      for (const id of sel.ids) {
        const known = isQueueId(id) ? q?.lookup(id) : undefined;
        const found = known ? (areas.includes(known.area) ? known : undefined) : isQueueId(id) ? await this.#find(id, areas) : undefined;
        if (!found) {
          result.missing++;
          continue;
        }
        batch.push(found);
        if (batch.length >= STEP) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length > 0) yield batch;
      return;
    }
    if (!sel.all && !sel.filter) throw new Error('no messages selected: give ids, a filter, or all');
    if (q) {
      const all = await q.select(sel.filter ?? {}, areas);
      for (let i = 0; i < all.length; i += STEP) yield all.slice(i, i + STEP);
      return;
    }
    const match = compileFilter(sel.filter ?? {});
    let batch: Target[] = [];
    for (const area of areas) {
      for await (const m of this.#spool.list(area)) {
        if (!match(m.envelope, m.states, area === 'hold')) continue;
        batch.push({ id: m.envelope.id, area, from: m.envelope.mailFrom, message: m });
        if (batch.length >= STEP) {
          yield batch;
          batch = [];
        }
      }
    }
    if (batch.length > 0) yield batch;
  }

  async #find(id: string, areas: ReadonlyArray<'queue' | 'hold'>): Promise<Target | undefined> {
    for (const area of areas) {
      const message = await this.#spool.get(id, area);
      if (message) return { id, area, from: message.envelope.mailFrom, message };
    }
    return undefined;
  }

  /**
   * Deletes through the journal: the ids are withdrawn from the schedule (waiting for passes
   * under way), journaled with one fsync per batch, and so gone for readers and delivery; the
   * files follow in the background. Without a server the files are removed before returning.
   */
  async #delete(batches: AsyncGenerator<Target[]>, result: AdminResult, progress?: (r: AdminResult) => void): Promise<void> {
    const q = this.#queue;
    let background = 0;
    for await (const batch of batches) {
      result.matched += batch.length;
      const queued = batch.filter((t) => t.area === 'queue').map((t) => t.id);
      // No delivery pass may be under way when a message is deleted: its outcome is recorded
      // (and logged) first, and no pass starts afterwards.
      if (q) await q.withdrawMany(queued);
      const inline = q !== undefined && batch.length <= REMOVE_INLINE && background === 0;
      try {
        result.changed += await this.#spool.deleteMany(batch, { removeNow: inline });
      } finally {
        if (q) for (const id of queued) q.restore(id);
      }
      // Each step above is a few ms of work in memory: commits of arriving mail get a turn.
      await turn();
      if (!inline) background += batch.length;
      progress?.({ ...result });
    }
    if (!q) {
      // No server: nothing else needs the thread pool, so the files go now, at full speed.
      await this.#spool.whenRemoved(PARALLEL);
      return;
    }
    const removing = Math.min(background, this.#spool.removing);
    if (removing > 0) result.removing = removing;
  }

  /**
   * Holds with marks (holds.ts): per batch, the messages are withdrawn from the schedule (waiting
   * for passes under way), marked with one append and one fsync, and restored (held: not scheduled).
   */
  async #hold(batches: AsyncGenerator<Target[]>, result: AdminResult, progress?: (r: AdminResult) => void): Promise<void> {
    const q = this.#queue;
    for await (const batch of batches) {
      result.matched += batch.length;
      const ids = batch.map((t) => t.id);
      if (q) await q.withdrawMany(ids);
      try {
        result.changed += await this.#spool.holdMany(ids);
      } finally {
        if (q) for (const id of ids) q.restore(id);
      }
      await turn();
      progress?.({ ...result });
    }
  }

  /**
   * release, flush and requeue: one message at a time each, up to PARALLEL at once. A release of
   * messages held by marks ends them per batch (one append and one fsync); the queue schedules
   * them again when the change is told.
   */
  async #each(op: AdminOp, batches: AsyncGenerator<Target[]>, result: AdminResult, progress?: (r: AdminResult) => void): Promise<void> {
    const gate = createGate(PARALLEL);
    let lastProgress = Date.now();
    for await (const all of batches) {
      let batch = all;
      if (op === 'release') {
        const marked = all.filter((t) => this.#spool.isMarkedHeld(t.id)).map((t) => t.id);
        if (marked.length > 0) {
          batch = all.filter((t) => !this.#spool.isMarkedHeld(t.id));
          result.matched += marked.length;
          result.changed += await this.#spool.releaseMany(marked);
          await turn();
        }
      }
      for (const t of batch) {
        result.matched++;
        await gate.run(() =>
          this.#apply(op, t).then(
            (changed) => {
              if (changed) result.changed++;
            },
            (err: unknown) => this.#log.error({ event: 'queue-admin-error', op, queueId: t.id, err }, `queue ${op} failed for one message`),
          ),
        );
        if (progress && Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
          lastProgress = Date.now();
          progress({ ...result });
        }
      }
    }
    await gate.drain();
  }

  async #apply(op: AdminOp, t: Target): Promise<boolean> {
    const { id } = t;
    const q = this.#queue;
    switch (op) {
      case 'release': {
        const m = t.message ?? (await this.#spool.get(id, 'hold'));
        if (!m) return false;
        const done = await this.#spool.move(id, 'hold', 'queue');
        if (done) {
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
        const m = t.message ?? (await this.#spool.get(id, 'queue'));
        return m ? this.#rewrite(m, (s) => (s.status === 'deferred' ? { ...s, nextAttemptAt: Date.now() } : undefined)) : false;
      }
      case 'requeue': {
        await q?.withdraw(id);
        let found = false;
        try {
          const m = t.message ?? (await this.#spool.get(id, 'queue'));
          if (!m) return false;
          found = true;
          // The retry history is forgotten: backoff starts again from the minimum, now.
          return await this.#rewrite(m, (s) => (s.status === 'deferred' ? { status: 'pending', attempts: 0, ...(s.lastReply ? { lastReply: s.lastReply } : {}), updatedAt: Date.now() } : undefined));
        } finally {
          q?.restore(id);
          if (found) q?.enqueue(id, Date.now());
        }
      }
      case 'hold':
      case 'delete':
        throw new Error(`${op} goes through its journal`);
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
