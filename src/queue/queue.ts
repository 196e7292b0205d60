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
}

interface Entry {
  dueAt: number;
  recovered: boolean;
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

  /** Schedules a message (default: now). An earlier time wins; ids being delivered are left alone. */
  enqueue(id: string, dueAt: number = Date.now(), recovered = false): void {
    if (this.#stopped || this.#inFlight.has(id)) return;
    const e = this.#entries.get(id);
    if (e && e.dueAt <= dueAt) {
      e.recovered ||= recovered;
      return;
    }
    this.#entries.set(id, { dueAt, recovered: recovered || (e?.recovered ?? false) });
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
    this.#pump();
  }

  /** Forgets a scheduled message (e.g. removed by an operator). Does not touch the spool. */
  forget(id: string): void {
    this.#entries.delete(id);
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
      this.#waiters.shift()!({ id, recovered: e.recovered });
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
