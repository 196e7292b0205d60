// The in-memory schedule over the spool: which message is due when, and how many are being
// delivered at once. It holds only ids and times (the spool holds everything else), so 400,000
// queued messages cost a few tens of MB. Starting it rescans the spool: the crash-recovery path.
import type { Logger } from '../observe/log.ts';
import type { Spool } from './spool.ts';
import { defaultRetryPolicy, messageDueAt, type RetryPolicy } from './schedule.ts';

export interface QueueOptions extends RetryPolicy {
  /** Messages delivered at the same time. */
  readonly concurrency: number;
}

export const defaultQueueOptions: QueueOptions = Object.freeze({ ...defaultRetryPolicy, concurrency: 20 });

export interface QueueItem {
  readonly id: string;
  /**
   * True when the message came from disk at start-up (or after a failed pass): a delivery may
   * have been under way when the process died, so transports check for an earlier copy.
   */
  readonly recovered: boolean;
  /** Set by an operator's flush: deferred recipients are tried now, whatever their retry time. */
  readonly flush?: boolean;
}

interface Entry {
  dueAt: number;
  recovered: boolean;
  flush: boolean;
}

// Longest single timer; setTimeout overflows beyond 2^31-1 ms.
const MAX_TIMER = 2 ** 31 - 1;

export class Queue {
  readonly options: QueueOptions;
  readonly #spool: Spool;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Map<string, boolean>();
  // Min-heap of [dueAt, id]; entries whose time no longer matches #entries are stale and skipped.
  readonly #heap: Array<[number, string]> = [];
  readonly #waiters: Array<(item: QueueItem | undefined) => void> = [];
  // Ids an operator's command is working on (hold, delete): never scheduled until restored.
  readonly #suspended = new Set<string>();
  // Callers waiting for a delivery pass of an id to end.
  readonly #idle = new Map<string, Array<() => void>>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  #unsubscribe: (() => void) | undefined;
  #stopped = false;

  constructor(spool: Spool, opts: Partial<QueueOptions> & { readonly log: Logger }) {
    const { log, ...rest } = opts;
    this.options = { ...defaultQueueOptions, ...rest };
    if (!(this.options.concurrency >= 1)) throw new Error(`queue concurrency is ${this.options.concurrency}; set it to 1 or more`);
    this.#spool = spool;
    this.#log = log;
  }

  /**
   * Subscribes to new commits, then schedules every queued message with recipients left to try
   * (marked recovered) and removes messages whose recipients are all final.
   */
  async start(): Promise<{ scheduled: number; removed: number }> {
    this.#unsubscribe ??= this.#spool.onCommit((env) => this.enqueue(env.id));
    let scheduled = 0;
    let removed = 0;
    const now = Date.now();
    for await (const m of this.#spool.list()) {
      const id = m.envelope.id;
      const due = messageDueAt(m.states, now);
      if (due === undefined) {
        // Every recipient was final but the crash came before the removal.
        await this.#spool.remove(id);
        removed++;
      } else if (!this.#inFlight.has(id)) {
        this.enqueue(id, due, true);
        scheduled++;
      }
    }
    this.#log.info({ event: 'queue-loaded', scheduled, removed }, 'queue loaded from spool');
    return { scheduled, removed };
  }

  /**
   * Schedules a message (default: now). An earlier time wins; ids being delivered are left alone.
   * `flush` makes the pass try deferred recipients before their retry time (an operator's flush).
   */
  enqueue(id: string, dueAt: number = Date.now(), recovered = false, flush = false): void {
    if (this.#stopped || this.#inFlight.has(id) || this.#suspended.has(id)) return;
    const e = this.#entries.get(id);
    if (e && e.dueAt <= dueAt) {
      e.recovered ||= recovered;
      e.flush ||= flush;
      return;
    }
    this.#entries.set(id, { dueAt, recovered: recovered || (e?.recovered ?? false), flush: flush || (e?.flush ?? false) });
    this.#push(dueAt, id);
    this.#pump();
  }

  /**
   * The next due message, once fewer than `concurrency` are in flight. Resolves undefined when
   * the queue stops or `signal` aborts. Every item taken must be given back with `release`.
   */
  take(signal?: AbortSignal): Promise<QueueItem | undefined> {
    if (this.#stopped || signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter = (item: QueueItem | undefined): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(item);
      };
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve(undefined);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#pump();
    });
  }

  /** Ends a delivery pass: forget the message, or schedule it again at `next.dueAt`. */
  release(id: string, next?: { readonly dueAt: number; readonly recovered?: boolean }): void {
    this.#inFlight.delete(id);
    if (next && !this.#stopped) this.enqueue(id, next.dueAt, next.recovered ?? false);
    const waiting = this.#idle.get(id);
    if (waiting) {
      this.#idle.delete(id);
      for (const w of waiting) w();
    }
    this.#pump();
  }

  /** Forgets a scheduled message (e.g. removed by an operator). Does not touch the spool. */
  forget(id: string): void {
    this.#entries.delete(id);
  }

  /**
   * Takes a message out of the schedule for an operator's command and keeps it out until
   * `restore`. Resolves once no delivery pass of it is under way, so the caller may move or
   * remove its file without losing a state record.
   */
  withdraw(id: string): Promise<void> {
    this.#suspended.add(id);
    this.#entries.delete(id);
    if (!this.#inFlight.has(id) || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.#idle.get(id) ?? [];
      list.push(resolve);
      this.#idle.set(id, list);
    });
  }

  /** Ends a `withdraw`; the id may be scheduled again (enqueue it if it should be). */
  restore(id: string): void {
    this.#suspended.delete(id);
  }

  /** True while a delivery pass of `id` is under way. */
  isInFlight(id: string): boolean {
    return this.#inFlight.has(id);
  }

  /** Makes every scheduled message due now, deferred recipients included; returns how many. */
  flushAll(): number {
    const now = Date.now();
    const ids = [...this.#entries.keys()];
    for (const id of ids) {
      // Re-inserting with an earlier time replaces the entry (the old heap slot goes stale).
      const e = this.#entries.get(id)!;
      e.flush = true;
      if (e.dueAt > now) {
        e.dueAt = now;
        this.#push(now, id);
      }
    }
    this.#pump();
    return ids.length;
  }

  /** When `id` is next due, if scheduled. */
  dueAt(id: string): number | undefined {
    return this.#entries.get(id)?.dueAt;
  }

  get scheduled(): number {
    return this.#entries.size;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Stops handing out work; pending `take` calls resolve undefined. */
  stop(): void {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#clearTimer();
    for (const w of this.#waiters.splice(0)) w(undefined);
    for (const list of this.#idle.values()) for (const w of list) w();
    this.#idle.clear();
  }

  #pump(): void {
    while (this.#waiters.length > 0 && this.#inFlight.size < this.options.concurrency) {
      const top = this.#peek();
      if (!top || top[0] > Date.now()) break;
      this.#pop();
      const [, id] = top;
      const e = this.#entries.get(id)!;
      this.#entries.delete(id);
      this.#inFlight.set(id, e.recovered);
      this.#waiters.shift()!(e.flush ? { id, recovered: e.recovered, flush: true } : { id, recovered: e.recovered });
    }
    this.#arm();
  }

  /** Wakes #pump when the earliest message falls due, if anybody is waiting for it. */
  #arm(): void {
    const top = this.#waiters.length > 0 && this.#inFlight.size < this.options.concurrency ? this.#peek() : undefined;
    const at = top ? top[0] : Infinity;
    if (at === this.#timerAt) return;
    this.#clearTimer();
    if (at === Infinity) return;
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        this.#pump();
      },
      Math.min(Math.max(at - Date.now(), 0), MAX_TIMER),
    );
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  /** The earliest live heap entry, dropping stale ones. */
  #peek(): [number, string] | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (this.#entries.get(top[1])?.dueAt === top[0]) return top;
      this.#pop();
    }
    return undefined;
  }

  #push(at: number, id: string): void {
    const h = this.#heap;
    h.push([at, id]);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]![0] <= h[i]![0]) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]![0] < h[m]![0]) m = l;
      if (r < h.length && h[r]![0] < h[m]![0]) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
}
