// The durable queue on disk: incoming/ (being written), queue/<bucket>/<id> (committed, with the
// per-recipient state appended to the same file), hold/<bucket>/<id> (put on hold by an operator,
// never scheduled), quarantine/<bucket>/<id> (kill-level spam kept for review, never scheduled),
// corrupt/ (moved aside, never delivered), deleted.log (ids an operator deleted whose files are
// still being removed: hidden from every reader, never delivered), held.log (messages an operator
// put on hold without moving their files: listed with hold/, never scheduled; holds.ts).
// Format and reasons: docs/decisions/0002-spool-format.md, 0006-outbound-delivery.md and 0011.
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Logger } from '../observe/log.ts';
import { PENDING, type Envelope, type NewEnvelope, type RecipientState } from './envelope.ts';
import { DirSyncer, fsyncPath } from './dirsync.ts';
import { encodeStateRecord, type StateUpdate } from './format.ts';
import { DEFAULT_FRESH_CACHE_BYTES, FreshCache } from './fresh.ts';
import { DeletionJournal, JOURNAL_BATCH } from './journal.ts';
import { HoldJournal } from './holds.ts';
import { lockSpool } from './lock.ts';
import { BodyStream, loadMessage, loadMessageSync, MemoryBodyStream, SpoolCorruptError, type LoadedMessage } from './reader.ts';
import { Reaper } from './reaper.ts';
import { CatalogSnapshots } from './snapshot.ts';
import type { ScanPool } from './scan-pool.ts';
import { readRows, type ScanRows } from './scan-rows.ts';
import { isQueueId, queueIdTime } from '../core/ids.ts';
import { SpoolWriter, type CommittedBytes } from './writer.ts';
import { beginMessage, bucketDirs, bucketOf, BUCKETS, DEFAULT_MEMORY_LIMIT, SPOOL_AREAS, spoolPath, type IntakeSettings, type SpoolArea } from './intake.ts';

export type { Envelope, EnvelopeClient, EnvelopeRecipient, NewEnvelope, RecipientState, RecipientStatus, TransportName } from './envelope.ts';
export { isFinal } from './envelope.ts';
export type { StateUpdate } from './format.ts';
export { SpoolCorruptError } from './reader.ts';
export { SpoolWriter } from './writer.ts';

export { SPOOL_AREAS, type SpoolArea } from './intake.ts';
/** Longest stretch of synchronous header reads in list() before the event loop gets a turn. */
const LIST_SLICE_MS = 4;
/** Files in one batch for a reader thread, and batches under way before the first is taken. */
const ROWS_BATCH = 512;
const ROWS_AHEAD = 8;

/** Reads the scan's files in reader threads when a folder has `from` or more to read (scan-pool.ts). */
export interface ScanRowsOption {
  readonly pool: ScanPool;
  readonly from: number;
  /** Takes a batch's rows (its corrupt, torn and unreadable files are dealt with already). */
  readonly take: (rows: ScanRows) => Promise<void> | void;
}

export interface ScanOpts {
  readonly onFolder?: (done: number, total: number) => void;
  readonly known?: (id: string) => boolean;
  readonly listings?: ReadonlyArray<Promise<string[]>>;
  /** Files read by reader threads come to `rows.take`, not out of the generator. */
  readonly rows?: ScanRowsOption;
}

interface RowsJob {
  readonly dir: string;
  /** Files of hold marks (in queue/): a missing one drops its mark. */
  readonly marks: boolean;
  readonly rows: Promise<ScanRows>;
}
/**
 * Files of deleted messages removed at once in the background. Two leave the other thread-pool
 * threads (four by default) to the commits of arriving mail; the decision record has the figures.
 */
export const DEFAULT_REMOVE_CONCURRENCY = 2;

export interface SpoolOptions {
  readonly log: Logger;
  /** fsync files and folders (default true). Only tests and benchmarks that say so turn it off. */
  readonly fsync?: boolean;
  /** Share folder fsyncs between concurrent commits (default true); false only to measure it. */
  readonly groupCommit?: boolean;
  /** Message bytes kept in memory before a message spills to incoming/ (default 256 KiB). */
  readonly memoryLimit?: number;
  /**
   * Files of deleted messages removed at once in the background (default 2). 0 keeps them (they
   * stay journaled and hidden): only for tests of what a crash leaves.
   */
  readonly removeConcurrency?: number;
  /**
   * Bytes of messages committed from memory kept for their first delivery pass (default 32 MiB;
   * 0 keeps none). A message not kept is read from its file, as after a restart.
   */
  readonly freshCacheBytes?: number;
}

/** How delivery read message bodies, and what the cache of fresh messages holds. */
export interface FreshStats {
  readonly bodiesFromMemory: number;
  readonly bodiesFromFile: number;
  readonly cachedMessages: number;
  readonly cachedBytes: number;
}

/** What changed in the spool, told to `onChange` listeners once it is durable. */
export type SpoolChange =
  | { readonly kind: 'committed'; readonly envelope: Envelope; readonly area: SpoolArea }
  | { readonly kind: 'states'; readonly id: string; readonly updates: readonly StateUpdate[] }
  | { readonly kind: 'moved'; readonly id: string; readonly from: SpoolArea; readonly to: SpoolArea }
  /** Gone for readers: removed, moved aside as corrupt, or deleted (journaled). */
  | { readonly kind: 'removed'; readonly ids: readonly string[] }
  /** Put on hold (`held`) or released by a hold mark (held.log); the files stay in queue/. */
  | { readonly kind: 'held'; readonly ids: readonly string[]; readonly held: boolean };

export interface SpooledMessage {
  readonly envelope: Envelope;
  /** One state per recipient, in envelope order. */
  readonly states: readonly RecipientState[];
}


export class SpoolNotFoundError extends Error {
  constructor(readonly id: string) {
    super(`message ${id} is not in the spool`);
    this.name = 'SpoolNotFoundError';
  }
}

export class Spool {
  readonly dir: string;
  readonly #log: Logger;
  readonly #fsync: boolean;
  readonly #memoryLimit: number;
  readonly #syncer: DirSyncer;
  readonly #release: () => Promise<void>;
  readonly #changeListeners = new Set<(c: SpoolChange) => void>();
  readonly #busy = new Map<string, Promise<unknown>>();
  readonly #journal: DeletionJournal;
  /** Deleted ids whose removal is not yet durable: hidden from every reader, never delivered. */
  readonly #deleted: Set<string>;
  readonly #reaper: Reaper;
  readonly #holdJournal: HoldJournal;
  /** Messages held by a mark in held.log (their files are in queue/). */
  readonly #holds: Set<string>;
  /** Messages just committed from memory, for their first delivery pass (docs/decisions/0009). */
  readonly #fresh: FreshCache;
  readonly #intake: IntakeSettings;
  /** The catalog snapshot and its change logs (snapshot.ts). */
  readonly snapshots: CatalogSnapshots;
  /** Ids whose last append failed: the file may hold bytes the catalog never heard of. */
  readonly #suspect = new Set<string>();
  #bodiesFromMemory = 0;
  #bodiesFromFile = 0;
  #closed = false;

  private constructor(dir: string, opts: SpoolOptions, release: () => Promise<void>, journal: DeletionJournal, deleted: Set<string>, holds: { journal: HoldJournal; ids: Set<string> }, snapshots: CatalogSnapshots) {
    this.dir = dir;
    this.snapshots = snapshots;
    this.#log = opts.log;
    this.#fsync = opts.fsync ?? true;
    this.#memoryLimit = opts.memoryLimit ?? DEFAULT_MEMORY_LIMIT;
    this.#syncer = new DirSyncer({ enabled: this.#fsync, coalesce: opts.groupCommit ?? true });
    this.#release = release;
    this.#journal = journal;
    this.#deleted = deleted;
    this.#holdJournal = holds.journal;
    this.#holds = holds.ids;
    this.#fresh = new FreshCache(opts.freshCacheBytes ?? DEFAULT_FRESH_CACHE_BYTES);
    this.#intake = {
      root: dir,
      syncer: this.#syncer,
      fsync: this.#fsync,
      memoryLimit: this.#memoryLimit,
      assertOpen: () => this.#assertOpen(),
      log: opts.log,
      committed: (e, area, written) => {
        if (area === 'queue' && written) this.#keepFresh(e, written);
        this.#emitChange({ kind: 'committed', envelope: e, area });
      },
    };
    this.#reaper = new Reaper({
      paths: (id, hint) => {
        const first = (SPOOL_AREAS as readonly string[]).includes(hint ?? '') ? (hint as SpoolArea) : 'queue';
        return [first, ...SPOOL_AREAS.filter((a) => a !== first)].map((a) => this.messagePath(id, a));
      },
      journal,
      fsync: this.#fsync,
      concurrency: opts.removeConcurrency ?? DEFAULT_REMOVE_CONCURRENCY,
      log: opts.log,
      gone: (ids) => {
        for (const id of ids) this.#deleted.delete(id);
      },
      stillNeeded: () => this.#deleted.size > 0,
    });
  }

  /**
   * Opens (creating if needed) the spool in `dir`, takes its lock and clears incoming/. Ids left
   * in the deletion journal stay hidden, and their files are removed in the background.
   */
  static async open(dir: string, opts: SpoolOptions): Promise<Spool> {
    const root = resolve(dir);
    await mkdir(root, { recursive: true, mode: 0o700 });
    const release = await lockSpool(root);
    let journal: DeletionJournal | undefined;
    let holds: { journal: HoldJournal; ids: Set<string> } | undefined;
    let snapshots: CatalogSnapshots | undefined;
    let spool: Spool;
    try {
      for (const sub of ['incoming', ...SPOOL_AREAS, 'corrupt']) await mkdir(join(root, sub), { recursive: true, mode: 0o700 });
      const buckets = bucketDirs(root);
      for (const d of buckets) await mkdir(d, { recursive: true, mode: 0o700 });
      const opened = await DeletionJournal.open(root, { fsync: opts.fsync ?? true });
      journal = opened.journal;
      holds = await HoldJournal.open(root, { fsync: opts.fsync ?? true });
      if (opts.fsync ?? true) {
        for (const area of SPOOL_AREAS) await fsyncPath(join(root, area));
        // Also makes a new deleted.log's and held.log's folder entries durable.
        await fsyncPath(root);
      }
      // Whatever is in incoming/ was never acknowledged (no 250 was sent for it).
      const leftovers = await readdir(join(root, 'incoming'));
      for (const name of leftovers) await unlink(join(root, 'incoming', name)).catch(() => undefined);
      if (leftovers.length > 0) opts.log.info({ event: 'spool-incoming-cleared', dir: root, files: leftovers.length }, 'removed unfinished incoming files');
      snapshots = await CatalogSnapshots.open(root, { fsync: opts.fsync ?? true, log: opts.log });
      spool = new Spool(root, opts, release, journal, opened.ids, holds, snapshots);
      // 96 descriptors held for the spool's life: a commit's folder fsync is one call, not three.
      spool.#syncer.keepOpen(buckets);
      if (opened.ids.size > 0) await spool.#adoptJournal(opened.ids);
    } catch (err) {
      await journal?.close().catch(() => undefined);
      await holds?.journal.close().catch(() => undefined);
      await snapshots?.close().catch(() => undefined);
      await release();
      throw err;
    }
    return spool;
  }

  /**
   * A previous process deleted these and may not have removed every file (a crash, a stop): find
   * the files that are left, one folder listing per bucket, and remove them in the background.
   */
  async #adoptJournal(ids: ReadonlySet<string>): Promise<void> {
    const found: Array<[string, SpoolArea]> = [];
    const seen = new Set<string>();
    const dirs: string[] = [];
    for (const area of SPOOL_AREAS) {
      for (const b of BUCKETS) {
        const d = join(this.dir, area, b);
        dirs.push(d);
        for (const name of await readdir(d)) {
          if (ids.has(name)) {
            found.push([name, area]);
            seen.add(name);
          }
        }
      }
    }
    const gone = [...ids].filter((id) => !seen.has(id));
    this.#log.info({ event: 'spool-journal-resumed', journaled: ids.size, files: found.length }, 'removing the files of messages deleted before the restart');
    this.#reaper.adopt(found, gone, dirs);
  }

  /** Folder fsyncs made so far (group commit makes this far lower than the commits). */
  get dirFsyncs(): number {
    return this.#syncer.fsyncs;
  }

  /** The shared folder-fsync coalescer (also used for Maildir folders). */
  get syncer(): DirSyncer {
    return this.#syncer;
  }

  /**
   * Where a message lives (in queue/, or in hold/ when `area` says so); for tests and operators.
   * A message held by a mark is in hold/ for every caller, its file in queue/.
   */
  messagePath(id: string, area: SpoolArea = 'queue'): string {
    return spoolPath(this.dir, id, area === 'hold' && this.#holds.has(id) ? 'queue' : area);
  }

  /** True while `id` is held by a mark in held.log (not by its file being in hold/). */
  isMarkedHeld(id: string): boolean {
    return this.#holds.has(id);
  }

  /** Messages held by a mark now. */
  get markedHeld(): number {
    return this.#holds.size;
  }

  /**
   * Puts messages of queue/ on hold with marks in held.log: one write and one fsync per batch,
   * no file moved; resolves once durable. From the call on they are listed as held and never
   * scheduled. The caller makes sure no delivery pass of them is under way. Resolves how many
   * were not held already.
   */
  async holdMany(ids: readonly string[]): Promise<number> {
    this.#assertOpen();
    const fresh = ids.filter((id) => !this.#holds.has(id) && !this.#deleted.has(id));
    for (const id of fresh) {
      this.#holds.add(id);
      this.#fresh.delete(id);
    }
    try {
      await this.#holdJournal.append('+', fresh);
    } catch (err) {
      // Not durable: not held (a torn line that reached the disk holds it at the next start).
      for (const id of fresh) this.#holds.delete(id);
      throw err;
    }
    if (fresh.length > 0) this.#emitChange({ kind: 'held', ids: fresh, held: true });
    return fresh.length;
  }

  /** Ends holds made by marks (holdMany); resolves how many of `ids` were so held, once durable. */
  async releaseMany(ids: readonly string[]): Promise<number> {
    this.#assertOpen();
    const marked = [...new Set(ids)].filter((id) => this.#holds.has(id));
    await this.#holdJournal.append('-', marked);
    for (const id of marked) this.#holds.delete(id);
    if (marked.length > 0) this.#emitChange({ kind: 'held', ids: marked, held: false });
    return marked.length;
  }

  /** Forgets the marks of messages that are gone; the lines need no fsync (a dead mark is harmless). */
  #dropMarks(ids: readonly string[]): void {
    const gone = ids.filter((id) => this.#holds.delete(id));
    if (gone.length > 0) this.#holdJournal.append('-', gone, false).catch((err: unknown) => this.#log.warn({ event: 'spool-hold-mark-error', err }, 'could not record released hold marks; they are dropped at the next start'));
  }

  /**
   * Starts a message. Write the message bytes (the Received header first) with `write`, then
   * `commit` — or `abort`.
   */
  begin(env: NewEnvelope): SpoolWriter {
    return beginMessage(this.#intake, env);
  }

  /**
   * A message another process (an acceptor) committed into this spool: scheduled and catalogued
   * exactly like one committed here.
   */
  adoptCommitted(envelope: Envelope, area: 'queue' | 'quarantine', written?: CommittedBytes): void {
    if (this.#closed) return; // the file stays; the next start finds it
    this.#intake.committed(envelope, area, written);
  }

  /**
   * Commits another process made that this one never heard of (an acceptor died between writing
   * a message and telling us): every queue/ file with an id from `since` on that `known` does not
   * know is announced as committed. Ids carry their arrival time, so older files are skipped
   * without being read.
   */
  async adoptStray(since: number, known: (id: string) => boolean): Promise<number> {
    let adopted = 0;
    for (const b of BUCKETS) {
      for (const name of await readdir(join(this.dir, 'queue', b))) {
        if (!isQueueId(name) || queueIdTime(name) < since || known(name) || this.#deleted.has(name)) continue;
        const m = await this.get(name);
        // Asked again: the acceptor's own announcement may have arrived while the file was read.
        if (!m || known(name)) continue;
        this.#emitChange({ kind: 'committed', envelope: m.envelope, area: 'queue' });
        adopted++;
      }
    }
    return adopted;
  }

  /** Calls `fn` after every durable change: commits, state records, moves and removals. */
  onChange(fn: (c: SpoolChange) => void): () => void {
    this.#changeListeners.add(fn);
    return () => this.#changeListeners.delete(fn);
  }

  /** True while `id` is deleted (journaled) and its file may still exist: it must not be delivered. */
  isDeleted(id: string): boolean {
    return this.#deleted.has(id);
  }

  /**
   * An operator's delete of many messages: appends their ids to the deletion journal (one write
   * and one fsync per 65,536 ids) and resolves once that is durable. From the call on, every
   * reader skips them and no delivery starts; the files are removed in the background
   * (`removing`), or before this resolves with `removeNow` (for a few). The caller makes sure no
   * delivery pass of them is under way. Resolves how many were not deleted already.
   */
  async deleteMany(entries: ReadonlyArray<{ readonly id: string; readonly area: SpoolArea }>, opts: { readonly removeNow?: boolean } = {}): Promise<number> {
    this.#assertOpen();
    const fresh: Array<{ readonly id: string; readonly area: SpoolArea }> = [];
    for (const e of entries) {
      if (!isQueueId(e.id)) throw new Error(`not a queue id: ${JSON.stringify(e.id)}`);
      if (this.#deleted.has(e.id)) continue;
      // Hidden at once, before the journal is durable, so no reader sees it half-deleted.
      this.#deleted.add(e.id);
      this.#fresh.delete(e.id);
      fresh.push(e);
    }
    for (let i = 0; i < fresh.length; i += JOURNAL_BATCH) {
      const batch = fresh.slice(i, i + JOURNAL_BATCH);
      const ids = batch.map((e) => e.id);
      try {
        await this.#journal.append(ids);
      } catch (err) {
        // Not durable: visible again (earlier batches stay deleted). Torn lines of this batch
        // that reached the disk are deleted at the next start, which is what was asked.
        for (const e of fresh.slice(i)) this.#deleted.delete(e.id);
        throw err;
      }
      this.#emitChange({ kind: 'removed', ids });
      if (opts.removeNow) await this.#reaper.removeNow(batch.map((e) => [e.id, e.area] as const));
      else for (const e of batch) this.#reaper.add(e.id, e.area);
    }
    return fresh.length;
  }

  /** Deleted messages whose files are still to be removed. */
  get removing(): number {
    return this.#reaper.pending;
  }

  /**
   * Resolves when every deleted message's file is gone, durably, and the journal is emptied.
   * `concurrency` changes the pace from then on (the CLI without a server goes at full speed).
   */
  whenRemoved(concurrency?: number): Promise<void> {
    if (concurrency !== undefined) this.#reaper.setConcurrency(concurrency);
    return this.#reaper.whenIdle();
  }

  /**
   * Every queued message with its recipient states, without reading message bodies. Streams
   * folder by folder; the order is by id within a folder, not overall. Corrupt files are moved
   * aside and skipped. Headers are read with synchronous calls in slices of a few milliseconds,
   * yielding to the event loop between slices (see the decision record for the figures).
   * `area: 'hold'` lists the messages on hold instead: hold/ and those held by a mark (whose
   * files queue/ lists no more). `onFolder` hears as each folder begins (progress of a long scan).
   */
  list(area: SpoolArea = 'queue', opts: { readonly onFolder?: (done: number, total: number) => void } = {}): AsyncGenerator<SpooledMessage> {
    return this.scan(area, opts);
  }

  /**
   * `list`, but each listed file is first offered to `known` (synchronously, by its id): when it
   * returns true the caller has taken the file's facts from elsewhere (the catalog snapshot,
   * snapshot.ts), and the file is neither read nor yielded.
   */
  async *scan(area: SpoolArea, opts: ScanOpts = {}): AsyncGenerator<SpooledMessage> {
    let sliceStart = performance.now();
    const yieldSoon = async (): Promise<void> => {
      if (performance.now() - sliceStart <= LIST_SLICE_MS) return;
      await new Promise<void>((r) => setImmediate(r));
      sliceStart = performance.now();
    };
    let folders = 0;
    const marked = new Map<string, string[]>();
    if (area === 'hold') {
      for (const id of this.#holds) {
        const list = marked.get(bucketOf(id));
        if (list) list.push(id);
        else marked.set(bucketOf(id), [id]);
      }
    }
    const listings = opts.listings ?? this.listFolders(area);
    // Batches handed to reader threads, taken in order once `ROWS_AHEAD` more are under way.
    const ahead: RowsJob[] = [];
    const rows = opts.rows;
    for (const [i, b] of [...BUCKETS].entries()) {
      opts.onFolder?.(folders++, BUCKETS.length);
      const dir = join(this.dir, area, b);
      const names = (await listings[i]!).sort();
      const entries: Array<readonly [string, string]> = names.map((n) => [dir, n] as const);
      for (const id of (marked.get(b) ?? []).sort()) entries.push([join(this.dir, 'queue', b), id]);
      const toRead: Array<readonly [string, string]> = [];
      let n = 0;
      for (const e of entries) {
        const [d, name] = e;
        if (this.#deleted.has(name) || (area === 'queue' && this.#holds.has(name))) continue;
        // The snapshot's facts stand for the file only under a name the spool accepts, and only
        // for a file in the folder listed (a mark's file in queue/ is read: its area differs).
        const known = d === dir && opts.known !== undefined && isQueueId(name) && bucketOf(name) === b && opts.known(name);
        if (!known) toRead.push(e);
        // A snapshot entry takes less than a microsecond: the clock is read every 64th.
        if ((++n & 63) === 0) await yieldSoon();
      }
      if (rows && toRead.length >= rows.from) {
        // Many files: read by the reader threads, in batches of one folder; a bad name is
        // handled here (moved aside, as below).
        const batches = new Map<string, string[]>();
        for (const [d, name] of toRead) {
          if (!isQueueId(name) || bucketOf(name) !== b) {
            await this.#quarantine(join(d, name), 'unexpected file name in the queue folder');
            continue;
          }
          let list = batches.get(d);
          if (!list) batches.set(d, (list = []));
          list.push(name);
          if (list.length < ROWS_BATCH) continue;
          batches.delete(d);
          ahead.push(this.#readRows(rows.pool, d, list, d !== dir));
          while (ahead.length > ROWS_AHEAD) await this.#takeRows(ahead.shift()!, rows.take, yieldSoon);
        }
        for (const [d, list] of batches) if (list.length > 0) ahead.push(this.#readRows(rows.pool, d, list, d !== dir));
        continue;
      }
      for (const [d, name] of toRead) {
        const m = this.#listOne(d, b, name);
        if (typeof m === 'string') await this.#quarantine(join(d, name), m);
        else if (m) yield m;
        else if (d !== dir) this.#dropMarks([name]); // a mark whose file is gone
        await yieldSoon();
      }
    }
    while (ahead.length > 0) await this.#takeRows(ahead.shift()!, rows!.take, yieldSoon);
  }

  /** Sends one batch to the reader threads; read here instead if they fail (a broken install). */
  #readRows(pool: ScanPool, dir: string, names: string[], marks: boolean): RowsJob {
    const rows = pool.read(dir, names).catch((err: unknown) => {
      this.#log.warn({ event: 'spool-scan-thread-error', dir, err }, 'spool scan reader thread failed; the batch is read on the main thread');
      return readRows({ dir, names });
    });
    return { dir, marks, rows };
  }

  /** Takes one batch of read files: moves the corrupt ones aside, logs the rest, hands the rows on. */
  async #takeRows(job: RowsJob, take: (rows: ScanRows) => Promise<void> | void, yieldSoon: () => Promise<void>): Promise<void> {
    const r = await job.rows;
    for (const [name, reason] of r.corrupt) await this.#quarantine(join(job.dir, name), reason);
    for (const [name, records] of r.torn) this.#warnTorn(join(job.dir, name), records);
    for (const [name, message] of r.unreadable) this.#unreadable(join(job.dir, name), message);
    if (job.marks && r.missing.length > 0) this.#dropMarks(r.missing); // marks whose files are gone
    await take(r);
    await yieldSoon();
  }

  /**
   * Lists every folder of `area` at once (in the thread pool), for `scan`: the listings come in
   * while the main thread works. A listing that fails fails the scan when it gets to it.
   */
  listFolders(area: SpoolArea): Array<Promise<string[]>> {
    return [...BUCKETS].map((b) => {
      const p = readdir(join(this.dir, area, b));
      // Handled where it is awaited; this only keeps a scan left early from an unhandled rejection.
      p.catch(() => undefined);
      return p;
    });
  }

  /** One message's envelope and states; undefined when it is not (or no longer) queued. */
  async get(id: string, area: SpoolArea = 'queue'): Promise<SpooledMessage | undefined> {
    if (!isQueueId(id) || this.#deleted.has(id)) return undefined;
    // Just committed and untouched since: the file holds this envelope and no state record.
    const fresh = area === 'queue' ? this.#fresh.get(id) : undefined;
    if (fresh) return { envelope: fresh.envelope, states: fresh.envelope.recipients.map(() => PENDING) };
    return this.#load(id, area);
  }

  /**
   * The message bytes; the stream errors with SpoolCorruptError if they do not match the hash.
   * A message committed from memory moments ago is read from memory: the same bytes, hashed at
   * commit.
   */
  openBody(id: string): BodyStream | MemoryBodyStream {
    const path = this.messagePath(id);
    const deleted = this.#deleted.has(id);
    const fresh = deleted ? undefined : this.#fresh.get(id);
    if (fresh) {
      this.#bodiesFromMemory++;
      return new MemoryBodyStream(id, fresh.body);
    }
    this.#bodiesFromFile++;
    return new BodyStream(path, id, (err) => this.#quarantine(path, err.reason), deleted);
  }

  /** How delivery read message bodies so far, and what is kept in memory for it now. */
  get freshStats(): FreshStats {
    return { bodiesFromMemory: this.#bodiesFromMemory, bodiesFromFile: this.#bodiesFromFile, cachedMessages: this.#fresh.size, cachedBytes: this.#fresh.bytes };
  }

  /** Records one recipient's new state durably. */
  markRecipient(id: string, index: number, state: RecipientState): Promise<void> {
    return this.markRecipients(id, [{ index, state }]);
  }

  /** Records several recipients' new states with one append and one fsync. */
  markRecipients(id: string, updates: readonly StateUpdate[]): Promise<void> {
    this.#assertOpen();
    const path = this.messagePath(id);
    if (updates.length === 0) return Promise.resolve();
    const record = encodeStateRecord(updates);
    // From the first byte appended on, the file no longer matches the fresh copy's states (even
    // when the append fails half-way): read it from the file again.
    this.#fresh.delete(id);
    return this.#serial(id, async () => {
      // A deleted message is gone for delivery, even while its file waits for removal.
      if (this.#deleted.has(id)) throw new SpoolNotFoundError(id);
      // Named in the snapshot's change log before the file changes: a start after a crash reads
      // this file rather than trust an older snapshot of it.
      await this.snapshots.note(id);
      let fh;
      try {
        // No O_CREAT: a state record must never bring back a removed message.
        fh = await open(path, constants.O_WRONLY | constants.O_APPEND);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new SpoolNotFoundError(id);
        throw err;
      }
      try {
        const { bytesWritten } = await fh.write(record);
        if (bytesWritten !== record.length) throw new Error(`short write of a state record to ${path}`);
        // fdatasync also persists the new file size; the folder entry is unchanged.
        if (this.#fsync) await fh.datasync();
      } catch (err) {
        this.#suspect.add(id);
        throw err;
      } finally {
        await fh.close();
      }
      this.#emitChange({ kind: 'states', id, updates });
    });
  }

  /**
   * True when the catalog's facts of `id` may go into a snapshot: no operation on its file is
   * under way (its change is told once its append is durable) and no append of it failed.
   */
  settled(id: string): boolean {
    return !this.#busy.has(id) && !this.#suspect.has(id) && !this.#deleted.has(id);
  }

  /**
   * Removes a message whose last recipients became final in this pass, instead of recording
   * their states first: the unlink and a folder fsync (shared with concurrent commits and
   * removals in that folder) make the end durable, where a state record costs an open, a write,
   * an fdatasync and a close of its own. A crash before the fsync ends repeats the pass — as a
   * crash before the state record's fdatasync would.
   */
  removeDelivered(id: string): Promise<void> {
    this.#assertOpen();
    const path = this.messagePath(id);
    this.#fresh.delete(id);
    return this.#serial(id, async () => {
      // An operator's delete owns the file now (its journal removes it).
      if (this.#deleted.has(id)) throw new SpoolNotFoundError(id);
      try {
        await unlink(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new SpoolNotFoundError(id);
        throw err;
      }
      await this.#syncer.sync(dirname(path));
      this.#emitChange({ kind: 'removed', ids: [id] });
    });
  }

  /**
   * Removes a message whose recipients are all final. Not fsync'd on purpose: if a crash undoes
   * the unlink, the file comes back with every recipient final and the next start removes it.
   */
  remove(id: string): Promise<void> {
    this.#assertOpen();
    const path = this.messagePath(id);
    this.#fresh.delete(id);
    return this.#serial(id, async () => {
      await unlink(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      this.#emitChange({ kind: 'removed', ids: [id] });
    });
  }

  /**
   * Moves a message between queue/ and hold/ (postsuper -h / -H): a held message is never
   * scheduled, also not after a restart. Resolves false when it is not in the `from` area (or
   * deleted). The caller makes sure no delivery of it is under way (its state records would be lost).
   */
  move(id: string, from: SpoolArea, to: SpoolArea): Promise<boolean> {
    this.#assertOpen();
    // Held by a mark: a release ends the mark; the file is in queue/ already.
    if (this.#holds.has(id)) return from === 'hold' && to === 'queue' ? this.releaseMany([id]).then((n) => n > 0) : Promise.resolve(false);
    const src = this.messagePath(id, from);
    const dst = this.messagePath(id, to);
    let moved = false;
    // Out of queue/ from the rename on, before the change is told.
    this.#fresh.delete(id);
    return this.#serial(id, async () => {
      if (this.#deleted.has(id)) return;
      try {
        await rename(src, dst);
        moved = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        return;
      }
      // Both folder entries changed; the two fsyncs coalesce with concurrent moves. The move is
      // told even when an fsync fails: the file is in `to` for every reader from the rename on.
      try {
        await Promise.all([this.#syncer.sync(join(dst, '..')), this.#syncer.sync(join(src, '..'))]);
      } finally {
        this.#emitChange({ kind: 'moved', id, from, to });
      }
    }).then(() => moved);
  }

  /**
   * Removes one message from an area whatever its recipients' states, at once (one unlink, no
   * journal): an operator's delete of a few. Resolves false when it is not there (or deleted).
   */
  discard(id: string, area: SpoolArea = 'queue'): Promise<boolean> {
    this.#assertOpen();
    const path = this.messagePath(id, area);
    let removed = false;
    this.#fresh.delete(id);
    return this.#serial(id, async () => {
      if (this.#deleted.has(id)) return;
      try {
        await unlink(path);
        removed = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (removed) this.#emitChange({ kind: 'removed', ids: [id] });
    }).then(() => removed);
  }

  /**
   * Stops removing deleted files (what is left stays journaled for the next start) and releases
   * the lock. Writers still open can no longer commit safely; finish them first.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#reaper.stop();
    await Promise.allSettled([...this.#busy.values()]);
    this.#fresh.clear();
    await this.#syncer.close();
    await this.#journal.close();
    await this.#holdJournal.close();
    await this.snapshots.close();
    await this.#release();
  }

  // After close another process may own the spool: no more changes from this one.
  #assertOpen(): void {
    if (this.#closed) throw new Error(`spool ${this.dir} is closed`);
  }


  /** Keeps a message committed from memory for its first delivery pass, if there is room. */
  #keepFresh(env: Envelope, written: CommittedBytes): void {
    try {
      // Parsed from the header bytes written, so it is the envelope a reader of the file gets.
      const envelope = { ...(JSON.parse(written.header.toString('utf8')) as Omit<Envelope, 'size'>), size: env.size };
      if (envelope.id !== env.id || envelope.size !== written.body.length) return;
      this.#fresh.add(envelope, written.body);
    } catch (err) {
      // Only a shortcut: delivery reads the file instead.
      this.#log.warn({ event: 'spool-fresh-skipped', queueId: env.id, err }, 'committed message not kept in memory; delivery reads its file');
    }
  }

  #emitChange(c: SpoolChange): void {
    if (c.kind === 'removed') this.#dropMarks(c.ids);
    for (const fn of this.#changeListeners) {
      try {
        fn(c);
      } catch (err) {
        // The change is durable already; a listener's failure must not undo or fail it.
        this.#log.error({ event: 'spool-listener-error', change: c.kind, err }, 'spool change listener failed');
      }
    }
  }

  /** Loads one listed file; a string is the reason to move it aside. */
  #listOne(dir: string, bucket: string, name: string): SpooledMessage | string | undefined {
    const path = join(dir, name);
    if (!isQueueId(name) || bucketOf(name) !== bucket) return 'unexpected file name in the queue folder';
    try {
      return this.#loaded(path, loadMessageSync(path, name));
    } catch (err) {
      if (err instanceof SpoolCorruptError) return err.reason;
      this.#unreadable(path, err);
      return undefined;
    }
  }

  /** Unreadable (permissions, I/O error) but not known to be corrupt: left where it is. */
  #unreadable(path: string, err: unknown): void {
    this.#log.error({ event: 'spool-unreadable', path, err }, 'cannot read spool file; it stays queued but is not scheduled');
  }

  #warnTorn(path: string, records: number): void {
    this.#log.warn({ event: 'spool-torn-record', path, records }, 'ignored unfinished state records (crash during an update)');
  }

  #loaded(path: string, m: LoadedMessage | undefined): SpooledMessage | undefined {
    if (!m) return undefined;
    if (m.torn > 0) this.#warnTorn(path, m.torn);
    return { envelope: m.envelope, states: m.states };
  }

  async #load(id: string, area: SpoolArea): Promise<SpooledMessage | undefined> {
    const path = this.messagePath(id, area);
    try {
      return this.#loaded(path, await loadMessage(path, id));
    } catch (err) {
      if (err instanceof SpoolCorruptError) {
        await this.#quarantine(path, err.reason);
        return undefined;
      }
      throw err;
    }
  }

  async #quarantine(path: string, reason: string): Promise<void> {
    this.#fresh.delete(basename(path));
    const base = join(this.dir, 'corrupt', basename(path));
    let target = base;
    for (let n = 1; await exists(target); n++) target = `${base}.${n}`;
    try {
      await rename(path, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // moved or removed meanwhile
      this.#log.error({ event: 'spool-corrupt', path, reason, err }, 'corrupt spool file could not be moved aside; it is skipped');
      return;
    }
    this.#log.error({ event: 'spool-corrupt', path, movedTo: target, reason }, 'corrupt spool file moved aside; it will not be delivered');
    this.#emitChange({ kind: 'removed', ids: [basename(path)] });
  }

  /** Runs operations on one message one after another (appends and removal never interleave). */
  #serial(id: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.#busy.get(id) ?? Promise.resolve();
    const p = prev.then(fn);
    const settled = p.catch(() => undefined);
    this.#busy.set(id, settled);
    void settled.then(() => {
      if (this.#busy.get(id) === settled) this.#busy.delete(id);
    });
    return p;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
