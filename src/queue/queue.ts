// The in-memory schedule over the spool (what is due when, how many in flight) and the catalog of
// what is queued, kept in step with the spool's changes so operator commands read no file. Starting
// it rescans the spool: the crash-recovery path. docs/decisions/0011-queue-delete-at-scale.md.
import type { Logger } from '../observe/log.ts';
import type { Spool, SpoolArea, SpoolChange, SpooledMessage } from './spool.ts';
import { defaultRetryPolicy, messageDueAt, type RetryPolicy } from './schedule.ts';
import { Catalog, F_FLUSH, F_IN_FLIGHT, F_PARKED, F_RECOVERED, F_SCHEDULED, F_SUSPENDED, type CatalogCounts, type CatalogSummary, type RowFacts, type Selected, type SnapshotLoader } from './catalog.ts';
import type { QueueFilter } from './filter.ts';
import { SnapshotEncoder, type LoadedSnapshot } from './snapshot.ts';
import { cellsDueAt, rowLength } from './snapshot-layout.ts';
import { defaultScanThreads, ScanPool } from './scan-pool.ts';
import type { ScanRows } from './scan-rows.ts';

export type { CatalogCounts, CatalogSummary, Selected } from './catalog.ts';

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

/** The start-up scan: how far it is. */
export interface LoadProgress {
  readonly state: 'waiting' | 'loading' | 'loaded' | 'failed';
  /** Files read so far (queue/ and hold/). */
  readonly scanned: number;
  readonly scheduled: number;
  /** Files whose recipients were all final already (removed). */
  readonly removed: number;
  readonly held: number;
  /** Messages the catalog holds now, new mail included. */
  readonly catalogued: number;
  /** Share of the spool's folders listed, 0 to 1. */
  readonly fraction: number;
  readonly startedAt?: number;
  /** How long the scan took, once loaded. */
  readonly ms?: number;
  /** Messages taken from the catalog snapshot (not read), and message files read. */
  readonly fromSnapshot: number;
  readonly read: number;
}

/** Files to read in one folder from which the scan uses reader threads. */
const THREADS_FROM = 1000;

export interface ScanOptions {
  /** Interval of the `queue-loading` progress line (default 2 s). */
  readonly progressEveryMs?: number;
  /**
   * Called after each file read, and awaited: only tests use it, to hold the scan at a known
   * point without depending on timing (messages taken from the catalog snapshot do not call it).
   */
  readonly scanned?: (count: number) => Promise<void> | void;
  /**
   * Reader threads for the files the scan reads (default: one per CPU; 0: read on the event loop),
   * used for a folder with at least `threadsFrom` files to read (default 1000): a small spool
   * does not wait for a thread to start. docs/decisions/0045.
   */
  readonly readerThreads?: number;
  readonly threadsFrom?: number;
  /**
   * How often the catalog snapshot is written while changes come (default 5 minutes); the first
   * one comes `snapshotFirstMs` after the scan (default 10 s: delivery of the old mail starts first).
   */
  readonly snapshotEveryMs?: number;
  readonly snapshotFirstMs?: number;
}

const SCAN_PROGRESS_MS = 2_000;
const SNAPSHOT_EVERY_MS = 5 * 60_000;
const SNAPSHOT_FIRST_MS = 10_000;

// Longest single timer; setTimeout overflows beyond 2^31-1 ms.
const MAX_TIMER = 2 ** 31 - 1;

export class Queue {
  readonly options: QueueOptions;
  readonly #spool: Spool;
  readonly #log: Logger;
  readonly #cat = new Catalog();
  // Min-heap of (due time, row) in two growing typed arrays. An entry whose time no longer
  // matches its row's (or whose row is no longer scheduled) is stale and skipped.
  #heapAt = new Float64Array(1024);
  #heapSlot = new Int32Array(1024);
  #heapLen = 0;
  #scheduled = 0;
  #inFlight = 0;
  readonly #waiters: Array<(item: QueueItem | undefined) => void> = [];
  // Callers waiting for a delivery pass of an id to end.
  readonly #idle = new Map<string, Array<() => void>>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  #unsubscribe: (() => void) | undefined;
  #stopped = false;
  #loading: Promise<{ scheduled: number; removed: number }> | undefined;
  #progress: { -readonly [K in keyof LoadProgress]: LoadProgress[K] } = { state: 'waiting', scanned: 0, scheduled: 0, removed: 0, held: 0, catalogued: 0, fraction: 0, fromSnapshot: 0, read: 0 };
  /** Spool changes heard since the last snapshot was captured. */
  #changes = 0;
  #saving: Promise<void> | undefined;
  #snapshotTimer: NodeJS.Timeout | undefined;
  readonly #loadWaiters: Array<() => void> = [];
  // Ids removed while the scan runs: a file the scan read just before its removal is not revived.
  readonly #gone = new Set<string>();
  // Ids appended to while the scan runs and not catalogued yet: a reader thread's batch may hold
  // their file as it was before (docs/decisions/0045), so their files are read again.
  readonly #appended = new Set<string>();

  constructor(spool: Spool, opts: Partial<QueueOptions> & { readonly log: Logger }) {
    const { log, ...rest } = opts;
    this.options = { ...defaultQueueOptions, ...rest };
    if (!(this.options.concurrency >= 1)) throw new Error(`queue concurrency is ${this.options.concurrency}; set it to 1 or more`);
    this.#spool = spool;
    this.#log = log;
  }

  /**
   * Subscribes to the spool's changes (at once, before the first await: a commit heard from then
   * on is catalogued and scheduled by itself), then scans the spool: schedules every queued
   * message with recipients left to try (marked recovered), removes messages whose recipients are
   * all final, and catalogues the messages on hold. Deleted (journaled) messages are not read at
   * all. The server does not wait for it: the listeners open first and the scan runs beside new
   * mail (docs/decisions/0018-startup.md); `loadProgress` and `whenLoaded` tell how far it is.
   */
  start(opts: ScanOptions = {}): Promise<{ scheduled: number; removed: number }> {
    this.#unsubscribe ??= this.#spool.onChange((c) => this.#changed(c));
    this.#loading ??= this.#scan(opts).then(
      (r) => r,
      (err: unknown) => {
        this.#progress = { ...this.#progress, state: 'failed' };
        throw err;
      },
    );
    return this.#loading;
  }

  async #scan(opts: ScanOptions): Promise<{ scheduled: number; removed: number }> {
    const t0 = performance.now();
    const p = this.#progress;
    p.state = 'loading';
    p.startedAt = Date.now();
    const every = opts.progressEveryMs ?? SCAN_PROGRESS_MS;
    const ticker = setInterval(() => this.#log.info({ event: 'queue-loading', ...this.loadProgress }, `loading the queue catalog: ${p.scanned} message(s) scanned, ${Math.round(p.fraction * 100)}% of folders`), every);
    ticker.unref();
    // Listed from now on (after the subscription): the folders are listed while the snapshot loads.
    const listings = { queue: this.#spool.listFolders('queue'), hold: this.#spool.listFolders('hold') };
    // Facts of files not appended to since the snapshot; a file listed but not in it is read.
    let snap: LoadedSnapshot | undefined;
    try {
      snap = await this.#spool.snapshots.load();
    } catch (err) {
      this.#log.warn({ event: 'catalog-snapshot-invalid', path: this.#spool.snapshots.path, err }, 'catalog snapshot not used; the queue is read from its files');
    }
    if (snap) this.#cat.reserve(this.#cat.size + snap.size);
    const now = Date.now();
    const loader = snap ? this.#cat.snapshotLoader(snap.cells, snap.strings) : undefined;
    const threads = opts.readerThreads ?? defaultScanThreads();
    let pool: ScanPool | undefined;
    const rowsFor = (area: 'queue' | 'hold') =>
      threads > 0
        ? {
            // Started at the first folder with many files to read (a lazy getter keeps it unstarted otherwise).
            get pool(): ScanPool {
              return (pool ??= new ScanPool(threads));
            },
            from: opts.threadsFrom ?? THREADS_FROM,
            take: (rows: ScanRows) => this.#fromRows(rows, area, now, opts),
          }
        : undefined;
    try {
      for (const area of ['queue', 'hold'] as const) {
        const base = area === 'queue' ? 0 : 0.9;
        const share = area === 'queue' ? 0.9 : 0.1;
        const onFolder = (done: number, total: number): void => {
          p.fraction = base + (share * done) / total;
        };
        // A listed file the snapshot has goes straight from its cells into the catalog's columns.
        const known = snap && loader ? (id: string): boolean => this.#fromSnapshot(snap, loader, id, area, now) : undefined;
        const rows = rowsFor(area);
        for await (const m of this.#spool.scan(area, { onFolder, listings: listings[area], ...(known ? { known } : {}), ...(rows ? { rows } : {}) })) {
          if (this.#stopped) return { scheduled: p.scheduled, removed: p.removed };
          p.scanned++;
          p.read++;
          await this.#putRead(m, area, now);
          if (opts.scanned) await opts.scanned(p.scanned);
        }
        // The snapshot's rows are taken without a yield: a stop is seen here, before "loaded".
        if (this.#stopped) return { scheduled: p.scheduled, removed: p.removed };
      }
    } finally {
      clearInterval(ticker);
      loader?.done();
      void pool?.close();
      this.#gone.clear();
      this.#appended.clear();
    }
    p.fraction = 1;
    p.state = 'loaded';
    p.ms = Math.round(performance.now() - t0);
    this.#log.info(
      { event: 'queue-loaded', scheduled: p.scheduled, removed: p.removed, held: p.held, scanned: p.scanned, fromSnapshot: p.fromSnapshot, read: p.read, snapshotChanged: snap?.changed, ms: p.ms },
      'queue loaded from spool',
    );
    for (const w of this.#loadWaiters.splice(0)) w();
    // Files read: a snapshot now spares the next start from reading them again.
    if (p.read > 0 || (snap && snap.size !== p.fromSnapshot)) this.#changes++;
    this.#snapshotTimer = setTimeout(() => {
      this.#snapshotSoon();
      this.#snapshotTimer = setInterval(() => this.#snapshotSoon(), opts.snapshotEveryMs ?? SNAPSHOT_EVERY_MS);
      this.#snapshotTimer.unref();
    }, opts.snapshotFirstMs ?? SNAPSHOT_FIRST_MS);
    this.#snapshotTimer.unref();
    return { scheduled: p.scheduled, removed: p.removed };
  }

  /**
   * Takes a listed file's facts from the snapshot (the scan's rules for a file read, on the
   * snapshot's cells); false when the file must be read: the snapshot lacks it, or every one of
   * its recipients is final (it is read, and removed, as a file would be).
   */
  #fromSnapshot(snap: LoadedSnapshot, loader: SnapshotLoader, id: string, area: 'queue' | 'hold', now: number): boolean {
    const at = snap.offset(id);
    if (at === undefined) return false;
    const due = snap.dueAt(at, now);
    if (area === 'queue' && due === undefined) return false;
    const p = this.#progress;
    p.scanned++;
    p.fromSnapshot++;
    const c = this.#cat;
    const known = c.slot(id);
    if (this.#stopped || this.#gone.has(id) || (known !== undefined && c.isIndexed(known))) return true;
    this.#putCells(loader, id, at, area, due, now);
    return true;
  }

  /** Catalogues (and schedules, in queue/) a message from cells: a snapshot's or a reader thread's. */
  #putCells(loader: SnapshotLoader, id: string, at: number, area: 'queue' | 'hold', due: number | undefined, now: number): void {
    const c = this.#cat;
    const p = this.#progress;
    const slot = c.open(id);
    loader.index(slot, at, area === 'hold');
    if (area === 'hold') {
      c.due[slot] = due ?? now;
      c.settle(slot);
      p.held++;
    } else if (!(c.flags[slot]! & F_IN_FLIGHT)) {
      this.enqueue(id, due, true);
      p.scheduled++;
    }
  }

  /** Catalogues (and schedules, in queue/) a message whose file the scan read on the event loop. */
  async #putRead(m: SpooledMessage, area: 'queue' | 'hold', now: number): Promise<void> {
    const p = this.#progress;
    const id = m.envelope.id;
    // Heard of since the subscription (a commit, a move in, a removal): the live change is
    // newer than this read and has catalogued and scheduled it (or dropped it) already.
    const known = this.#cat.slot(id);
    if (this.#gone.has(id) || (known !== undefined && this.#cat.isIndexed(known))) return;
    if (area === 'hold') {
      const slot = this.#cat.open(id);
      this.#cat.index(slot, m.envelope, m.states, true);
      // Kept for a release (holds.ts): when it is due again, without reading its file.
      this.#cat.due[slot] = messageDueAt(m.states, now) ?? now;
      this.#cat.settle(slot);
      p.held++;
      return;
    }
    const due = messageDueAt(m.states, now);
    if (due === undefined) {
      // Every recipient was final but the crash came before the removal.
      await this.#spool.remove(id);
      p.removed++;
      return;
    }
    const slot = this.#cat.open(id);
    this.#cat.index(slot, m.envelope, m.states, false);
    if (!(this.#cat.flags[slot]! & F_IN_FLIGHT)) {
      this.enqueue(id, due, true);
      p.scheduled++;
    }
  }

  /**
   * Takes a batch of files read by a reader thread: the scan's rules for a file read, on the
   * batch's cells (loaded as snapshot rows are).
   */
  async #fromRows(rows: ScanRows, area: 'queue' | 'hold', now: number, opts: ScanOptions): Promise<void> {
    const p = this.#progress;
    const c = this.#cat;
    const loader = c.snapshotLoader(rows.cells, rows.strings);
    const done: string[] = [];
    const again: string[] = [];
    try {
      for (let i = 0, at = 0; i < rows.ids.length; i++, at += rowLength(rows.cells, at)) {
        if (this.#stopped) return;
        const id = rows.ids[i]!;
        p.scanned++;
        p.read++;
        // Heard of since the subscription: the live change is newer than this read (see #scan).
        const known = c.slot(id);
        // Appended to since the thread may have read it (an operator's requeue by id): read again.
        if (this.#appended.has(id)) again.push(id);
        else if (!this.#gone.has(id) && !(known !== undefined && c.isIndexed(known))) {
          const due = cellsDueAt(rows.cells, at, now);
          if (area === 'queue' && due === undefined) done.push(id);
          else this.#putCells(loader, id, at, area, due, now);
        }
        if (opts.scanned) await opts.scanned(p.scanned);
      }
    } finally {
      loader.done();
    }
    // Every recipient was final but the crash came before the removal.
    for (const id of done) {
      await this.#spool.remove(id);
      p.removed++;
    }
    for (const id of again) {
      // A hold mark's file stays in queue/ (spool.ts holdMany).
      const m = (await this.#spool.get(id, area)) ?? (area === 'hold' ? await this.#spool.get(id, 'queue') : undefined);
      if (m && !this.#stopped) await this.#putRead(m, area, now);
    }
  }

  /** Writes a snapshot in the background if there is news for it (errors are logged). */
  #snapshotSoon(): void {
    if (this.#changes === 0 || this.#saving || this.#stopped) return;
    this.saveSnapshot().catch((err: unknown) => this.#log.warn({ event: 'catalog-snapshot-error', path: this.#spool.snapshots.path, err }, 'cannot write the catalog snapshot; the next start reads more files'));
  }

  /**
   * Writes the catalog snapshot (snapshot.ts) when the catalog is complete and changed since the
   * last one: a new change log first, then the facts of every settled message (one whose file
   * no operation is changing; the others are left out, so the next start reads them), then the
   * file, atomically. Also when the queue is stopped (the server's clean shutdown).
   */
  async saveSnapshot(): Promise<void> {
    // One under way may have captured before the latest changes: then one more.
    if (this.#saving) await this.#saving.catch(() => undefined);
    if (this.#progress.state !== 'loaded' || this.#changes === 0) return;
    this.#saving ??= this.#save().finally(() => (this.#saving = undefined));
    return this.#saving;
  }

  async #save(): Promise<void> {
    const t0 = performance.now();
    const snaps = this.#spool.snapshots;
    const changes = this.#changes;
    const seq = await snaps.rotate();
    const enc = new SnapshotEncoder();
    let left = 0;
    await this.#cat.eachIndexed((slot, id) => {
      if (!this.#spool.settled(id)) {
        left++;
        return;
      }
      enc.add(id, this.#cat.facts(slot)!);
    });
    await snaps.write(seq, enc.finish(seq, Date.now()));
    this.#changes -= changes;
    this.#log.info({ event: 'catalog-snapshot', path: snaps.path, messages: enc.entries, left, ms: Math.round(performance.now() - t0) }, 'catalog snapshot written');
  }

  /** How far the start-up scan is (counts so far; `fraction` is of the spool's folders). */
  get loadProgress(): LoadProgress {
    return { ...this.#progress, catalogued: this.#cat.indexed };
  }

  /** Resolves once the start-up scan is complete (at once when it is; also when the queue stops). */
  whenLoaded(): Promise<void> {
    if (this.#progress.state === 'loaded' || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => this.#loadWaiters.push(resolve));
  }

  /**
   * Schedules a message (default: now). An earlier time wins; ids being delivered are left alone.
   * `flush` makes the pass try deferred recipients before their retry time (an operator's flush).
   */
  enqueue(id: string, dueAt: number = Date.now(), recovered = false, flush = false): void {
    if (this.#stopped || this.#spool.isDeleted(id) || this.#spool.isMarkedHeld(id)) return;
    const c = this.#cat;
    const slot = c.open(id);
    const f = c.flags[slot]!;
    const extra = (recovered ? F_RECOVERED : 0) | (flush ? F_FLUSH : 0);
    if (f & F_SUSPENDED) {
      // Kept for restore: an operator's command works on it now.
      if (!(f & F_PARKED) || dueAt < c.due[slot]!) c.due[slot] = dueAt;
      c.flags[slot] = f | F_PARKED | extra;
      return;
    }
    if (f & F_IN_FLIGHT) return;
    if (f & F_SCHEDULED && c.due[slot]! <= dueAt) {
      c.flags[slot] = f | extra;
      return;
    }
    if (!(f & F_SCHEDULED)) this.#scheduled++;
    c.flags[slot] = f | F_SCHEDULED | extra;
    c.due[slot] = dueAt;
    this.#push(dueAt, slot);
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
    const c = this.#cat;
    const slot = c.slot(id);
    if (slot !== undefined && c.flags[slot]! & F_IN_FLIGHT) {
      c.flags[slot] = c.flags[slot]! & ~F_IN_FLIGHT;
      this.#inFlight--;
    }
    if (next && !this.#stopped) this.enqueue(id, next.dueAt, next.recovered ?? false);
    if (slot !== undefined) c.settle(slot);
    const waiting = this.#idle.get(id);
    if (waiting) {
      this.#idle.delete(id);
      for (const w of waiting) w();
    }
    this.#pump();
  }

  /** Forgets a scheduled message (e.g. removed by an operator). Does not touch the spool. */
  forget(id: string): void {
    const slot = this.#cat.slot(id);
    if (slot === undefined) return;
    this.#unschedule(slot);
    this.#cat.settle(slot);
  }

  /**
   * Takes a message out of the schedule for an operator's command and keeps it out until
   * `restore`. Resolves once no delivery pass of it is under way, so the caller may move or
   * remove its file without losing a state record.
   */
  withdraw(id: string): Promise<void> {
    const c = this.#cat;
    const slot = c.open(id);
    this.#unschedule(slot, true);
    c.flags[slot] = c.flags[slot]! | F_SUSPENDED;
    if (!(c.flags[slot] & F_IN_FLIGHT) || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.#idle.get(id) ?? [];
      list.push(resolve);
      this.#idle.set(id, list);
    });
  }

  /** `withdraw` for many at once; resolves when none of them is being delivered. */
  async withdrawMany(ids: readonly string[]): Promise<void> {
    const busy: Array<Promise<void>> = [];
    for (const id of ids) {
      const p = this.withdraw(id);
      if (this.isInFlight(id)) busy.push(p);
    }
    await Promise.all(busy);
  }

  /**
   * Ends a `withdraw`. A message still in queue/ (not held, not removed meanwhile) is scheduled
   * again at the time it had, or was given while withdrawn; the caller may enqueue it earlier.
   */
  restore(id: string): void {
    const c = this.#cat;
    const slot = c.slot(id);
    if (slot === undefined) return;
    const f = c.flags[slot]!;
    c.flags[slot] = f & ~(F_SUSPENDED | F_PARKED);
    if (f & F_PARKED && !c.isHeld(slot)) {
      this.enqueue(id, c.due[slot], (f & F_RECOVERED) !== 0, (f & F_FLUSH) !== 0);
    } else {
      c.flags[slot] = c.flags[slot] & ~(F_RECOVERED | F_FLUSH);
    }
    c.settle(slot);
  }

  /** True while a delivery pass of `id` is under way. */
  isInFlight(id: string): boolean {
    const slot = this.#cat.slot(id);
    return slot !== undefined && (this.#cat.flags[slot]! & F_IN_FLIGHT) !== 0;
  }

  /** Makes every scheduled message due now, deferred recipients included; returns how many. */
  flushAll(): number {
    const now = Date.now();
    const c = this.#cat;
    let n = 0;
    c.forEach(F_SCHEDULED, (slot) => {
      n++;
      c.flags[slot] = c.flags[slot]! | F_FLUSH;
      if (c.due[slot]! > now) {
        // The old heap entry goes stale.
        c.due[slot] = now;
        this.#push(now, slot);
      }
    });
    this.#pump();
    return n;
  }

  /** When `id` is next due, if scheduled. */
  dueAt(id: string): number | undefined {
    const slot = this.#cat.slot(id);
    return slot !== undefined && this.#cat.flags[slot]! & F_SCHEDULED ? this.#cat.due[slot] : undefined;
  }

  get scheduled(): number {
    return this.#scheduled;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Messages in queue/ and hold/ the catalog knows (what `select` chooses from). */
  get catalogued(): number {
    return this.#cat.indexed;
  }

  /**
   * The catalogued messages in `areas` (queue/, hold/) that match `filter`, without reading a
   * file: what the same filter finds on disk, less deleted messages.
   */
  select(filter: QueueFilter, areas: readonly SpoolArea[], now: number = Date.now()): Promise<Selected[]> {
    return this.#cat.select(filter, areas, now);
  }

  /** Counts of what `select` would choose (`queue list --summary` on a running server). */
  summarize(filter: QueueFilter, areas: readonly SpoolArea[], now: number = Date.now()): Promise<CatalogSummary> {
    return this.#cat.summarize(filter, areas, now);
  }

  /** The catalog's counts (messages, held, deferred, oldest) in one pass, no file read. */
  counts(): CatalogCounts {
    return this.#cat.counts();
  }

  /** A catalogued message's area (queue/ or hold/) and sender; undefined when the queue does not know it. */
  lookup(id: string): Selected | undefined {
    const slot = this.#cat.slot(id);
    return slot === undefined ? undefined : this.#cat.describe(slot);
  }

  /** What the catalog holds of a message (what a snapshot of it keeps); undefined when not catalogued. */
  facts(id: string): RowFacts | undefined {
    const slot = this.#cat.slot(id);
    return slot === undefined ? undefined : this.#cat.facts(slot);
  }

  /**
   * Stops handing out work; pending `take` calls resolve undefined. The catalog still follows the
   * spool's changes until `close`, so a snapshot written after the stop holds every one of them.
   */
  stop(): void {
    this.#stopped = true;
    // clearTimeout clears an interval as well.
    if (this.#snapshotTimer) clearTimeout(this.#snapshotTimer);
    this.#clearTimer();
    for (const w of this.#loadWaiters.splice(0)) w();
    for (const w of this.#waiters.splice(0)) w(undefined);
    for (const list of this.#idle.values()) for (const w of list) w();
    this.#idle.clear();
  }

  /**
   * The clean end: stops, waits for the start-up scan to leave, writes the catalog snapshot (when
   * the scan had finished: a half catalog is not the spool) and stops following the spool.
   */
  async close(): Promise<void> {
    this.stop();
    await this.#loading?.catch(() => undefined);
    try {
      await this.saveSnapshot();
    } finally {
      this.#unsubscribe?.();
      this.#unsubscribe = undefined;
    }
  }

  /** Keeps the catalog in step with the spool (and drops what is gone from the schedule). */
  #changed(ch: SpoolChange): void {
    const c = this.#cat;
    this.#changes++;
    switch (ch.kind) {
      case 'committed': {
        if (ch.area !== 'queue' && ch.area !== 'hold') return;
        const slot = c.open(ch.envelope.id);
        c.index(slot, ch.envelope, [], ch.area === 'hold');
        // Scheduled by the commit listener (queue/ only), as before the catalog existed.
        if (ch.area === 'queue') this.enqueue(ch.envelope.id);
        else c.settle(slot);
        return;
      }
      case 'states': {
        const slot = c.slot(ch.id);
        if (this.#progress.state === 'loading' && (slot === undefined || !c.isIndexed(slot))) this.#appended.add(ch.id);
        if (slot !== undefined) c.applyStates(slot, ch.updates);
        return;
      }
      case 'moved': {
        const slot = c.slot(ch.id);
        if (ch.to === 'queue' || ch.to === 'hold') {
          if (slot !== undefined && c.isIndexed(slot)) c.setHeld(slot, ch.to === 'hold');
          else {
            // Its old place may be listed already: the scan must not take it from there (the
            // snapshot's facts would bring it back where it was), #learn reads it where it is.
            if (this.#progress.state === 'loading') this.#gone.add(ch.id);
            void this.#learn(ch.id, ch.to);
          }
        } else {
          if (this.#progress.state === 'loading') this.#gone.add(ch.id);
          if (slot === undefined) return;
          c.unindex(slot);
          this.#unschedule(slot);
          c.settle(slot);
        }
        return;
      }
      case 'held': {
        // Marked held or released in place (holds.ts); the caller withdrew them from the schedule.
        const now = Date.now();
        for (const id of ch.ids) {
          const slot = c.slot(id);
          if (slot === undefined || !c.isIndexed(slot)) continue;
          c.setHeld(slot, ch.held);
          if (ch.held) continue;
          // Released: due when it was (a past time is now; delivery checks each recipient's own).
          this.enqueue(id, c.due[slot]! > 0 ? c.due[slot] : now);
        }
        return;
      }
      case 'removed': {
        if (this.#progress.state === 'loading') for (const id of ch.ids) this.#gone.add(id);
        for (const id of ch.ids) {
          const slot = c.slot(id);
          if (slot === undefined) continue;
          c.unindex(slot);
          this.#unschedule(slot);
          c.flags[slot] = c.flags[slot]! & ~F_PARKED;
          c.settle(slot);
        }
        this.#compactHeap();
        return;
      }
    }
  }

  /** Catalogues a message that came into queue/ or hold/ from elsewhere (e.g. quarantine). */
  async #learn(id: string, area: 'queue' | 'hold'): Promise<void> {
    try {
      const m = await this.#spool.get(id, area);
      if (!m || this.#stopped) return;
      const slot = this.#cat.open(id);
      if (!this.#cat.isIndexed(slot)) this.#cat.index(slot, m.envelope, m.states, area === 'hold');
      this.#cat.settle(slot);
    } catch (err) {
      this.#log.error({ event: 'queue-catalog-error', queueId: id, err }, 'cannot read a moved message into the queue catalog');
    }
  }

  /** Takes a row out of the schedule (its heap entry goes stale); `park` keeps its time and flags for restore. */
  #unschedule(slot: number, park = false): void {
    const c = this.#cat;
    if (!(c.flags[slot]! & F_SCHEDULED)) return;
    c.flags[slot] = park ? (c.flags[slot]! & ~F_SCHEDULED) | F_PARKED : c.flags[slot]! & ~(F_SCHEDULED | F_RECOVERED | F_FLUSH);
    this.#scheduled--;
  }

  #pump(): void {
    const c = this.#cat;
    while (this.#waiters.length > 0 && this.#inFlight < this.options.concurrency) {
      const slot = this.#peek();
      if (slot === undefined || this.#heapAt[0]! > Date.now()) break;
      this.#pop();
      const id = c.id(slot);
      const f = c.flags[slot]!;
      c.flags[slot] = (f & ~(F_SCHEDULED | F_RECOVERED | F_FLUSH)) | F_IN_FLIGHT;
      this.#scheduled--;
      // Never hand out a deleted message (the spool hides it too).
      if (this.#spool.isDeleted(id)) {
        c.flags[slot] = c.flags[slot] & ~F_IN_FLIGHT;
        c.settle(slot);
        continue;
      }
      this.#inFlight++;
      const recovered = (f & F_RECOVERED) !== 0;
      this.#waiters.shift()!(f & F_FLUSH ? { id, recovered, flush: true } : { id, recovered });
    }
    this.#arm();
  }

  /** Wakes #pump when the earliest message falls due, if anybody is waiting for it. */
  #arm(): void {
    const top = this.#waiters.length > 0 && this.#inFlight < this.options.concurrency ? this.#peek() : undefined;
    const at = top !== undefined ? this.#heapAt[0]! : Infinity;
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

  #live(i: number): boolean {
    const slot = this.#heapSlot[i]!;
    return (this.#cat.flags[slot]! & F_SCHEDULED) !== 0 && this.#cat.due[slot] === this.#heapAt[i];
  }

  /** The row of the earliest live heap entry (its time is #heapAt[0]), dropping stale ones. */
  #peek(): number | undefined {
    while (this.#heapLen > 0) {
      if (this.#live(0)) return this.#heapSlot[0];
      this.#pop();
    }
    return undefined;
  }

  #push(at: number, slot: number): void {
    if (this.#heapLen === this.#heapAt.length) {
      const a = new Float64Array(this.#heapLen * 2);
      a.set(this.#heapAt);
      this.#heapAt = a;
      const s = new Int32Array(this.#heapLen * 2);
      s.set(this.#heapSlot);
      this.#heapSlot = s;
    }
    const i = this.#heapLen++;
    this.#heapAt[i] = at;
    this.#heapSlot[i] = slot;
    this.#siftUp(i);
  }

  #siftUp(start: number): void {
    const at = this.#heapAt;
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (at[parent]! <= at[i]!) break;
      this.#swap(parent, i);
      i = parent;
    }
  }

  #pop(): void {
    const n = --this.#heapLen;
    if (n === 0) return;
    this.#heapAt[0] = this.#heapAt[n]!;
    this.#heapSlot[0] = this.#heapSlot[n]!;
    this.#siftDown(0);
  }

  #siftDown(start: number): void {
    const at = this.#heapAt;
    const n = this.#heapLen;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && at[l]! < at[m]!) m = l;
      if (r < n && at[r]! < at[m]!) m = r;
      if (m === i) break;
      this.#swap(m, i);
      i = m;
    }
  }

  #swap(a: number, b: number): void {
    const at = this.#heapAt;
    const sl = this.#heapSlot;
    const t = at[a]!;
    at[a] = at[b]!;
    at[b] = t;
    const s = sl[a]!;
    sl[a] = sl[b]!;
    sl[b] = s;
  }

  /**
   * After a bulk delete most heap entries may be stale (and deep, so never popped): rebuild the
   * heap from the live rows once they are fewer than half.
   */
  #compactHeap(): void {
    if (this.#heapLen < 1024 || this.#heapLen <= 2 * this.#scheduled) return;
    let n = 0;
    for (let i = 0; i < this.#heapLen; i++) {
      if (!this.#live(i)) continue;
      this.#heapAt[n] = this.#heapAt[i]!;
      this.#heapSlot[n] = this.#heapSlot[i]!;
      n++;
    }
    this.#heapLen = n;
    for (let i = (n >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }
}
