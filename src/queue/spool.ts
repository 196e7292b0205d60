// The durable queue on disk: incoming/ (being written), queue/<bucket>/<id> (committed, with the
// per-recipient state appended to the same file), hold/<bucket>/<id> (put on hold by an operator,
// never scheduled), quarantine/<bucket>/<id> (kill-level spam kept for review, never scheduled),
// corrupt/ (moved aside, never delivered).
// Format and reasons: docs/decisions/0002-spool-format.md and 0006-outbound-delivery.md.
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Logger } from '../observe/log.ts';
import { isQueueId, newQueueId } from '../core/ids.ts';
import { envelopeProblem, type Envelope, type NewEnvelope, type RecipientState } from './envelope.ts';
import { DirSyncer, fsyncPath } from './dirsync.ts';
import { encodeHeader, encodeStateRecord, type StateUpdate } from './format.ts';
import { lockSpool } from './lock.ts';
import { BodyStream, loadMessage, loadMessageSync, SpoolCorruptError, type LoadedMessage } from './reader.ts';
import { SpoolWriter } from './writer.ts';

export type { Envelope, EnvelopeClient, EnvelopeRecipient, NewEnvelope, RecipientState, RecipientStatus, TransportName } from './envelope.ts';
export { isFinal } from './envelope.ts';
export type { StateUpdate } from './format.ts';
export { SpoolCorruptError } from './reader.ts';
export { SpoolWriter } from './writer.ts';

/**
 * One sub-folder per base32hex digit: 400,000 messages are ~12,500 entries per folder. The folder
 * is the 8th id character, the arrival time in 32 ms steps modulo 32: messages that arrive together
 * share a folder, so their folder fsyncs coalesce, and a queue filled over more than about a second
 * spreads evenly over all 32 folders.
 */
const BUCKETS = '0123456789abcdefghijklmnopqrstuv';
const bucketOf = (id: string): string => id[7]!;
/** The folders holding message files: scheduled ones, those an operator put on hold, and spam
 * kept in quarantine (`mailward quarantine`). Only queue/ is ever scheduled. */
export type SpoolArea = 'queue' | 'hold' | 'quarantine';
export const SPOOL_AREAS: readonly SpoolArea[] = ['queue', 'hold', 'quarantine'];
/** Longest stretch of synchronous header reads in list() before the event loop gets a turn. */
const LIST_SLICE_MS = 4;

export interface SpoolOptions {
  readonly log: Logger;
  /** fsync files and folders (default true). Only tests and benchmarks that say so turn it off. */
  readonly fsync?: boolean;
  /** Share folder fsyncs between concurrent commits (default true); false only to measure it. */
  readonly groupCommit?: boolean;
  /** Message bytes kept in memory before a message spills to incoming/ (default 256 KiB). */
  readonly memoryLimit?: number;
}

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
  readonly #listeners = new Set<(env: Envelope) => void>();
  readonly #busy = new Map<string, Promise<unknown>>();
  #closed = false;

  private constructor(dir: string, opts: SpoolOptions, release: () => Promise<void>) {
    this.dir = dir;
    this.#log = opts.log;
    this.#fsync = opts.fsync ?? true;
    this.#memoryLimit = opts.memoryLimit ?? 256 * 1024;
    this.#syncer = new DirSyncer({ enabled: this.#fsync, coalesce: opts.groupCommit ?? true });
    this.#release = release;
  }

  /** Opens (creating if needed) the spool in `dir`, takes its lock and clears incoming/. */
  static async open(dir: string, opts: SpoolOptions): Promise<Spool> {
    const root = resolve(dir);
    await mkdir(root, { recursive: true, mode: 0o700 });
    const release = await lockSpool(root);
    try {
      for (const sub of ['incoming', ...SPOOL_AREAS, 'corrupt']) await mkdir(join(root, sub), { recursive: true, mode: 0o700 });
      for (const area of SPOOL_AREAS) for (const b of BUCKETS) await mkdir(join(root, area, b), { recursive: true, mode: 0o700 });
      if (opts.fsync ?? true) {
        for (const area of SPOOL_AREAS) await fsyncPath(join(root, area));
        await fsyncPath(root);
      }
      // Whatever is in incoming/ was never acknowledged (no 250 was sent for it).
      const leftovers = await readdir(join(root, 'incoming'));
      for (const name of leftovers) await unlink(join(root, 'incoming', name)).catch(() => undefined);
      if (leftovers.length > 0) opts.log.info({ event: 'spool-incoming-cleared', dir: root, files: leftovers.length }, 'removed unfinished incoming files');
    } catch (err) {
      await release();
      throw err;
    }
    return new Spool(root, opts, release);
  }

  /** Folder fsyncs made so far (group commit makes this far lower than the commits). */
  get dirFsyncs(): number {
    return this.#syncer.fsyncs;
  }

  /** The shared folder-fsync coalescer (also used for Maildir folders). */
  get syncer(): DirSyncer {
    return this.#syncer;
  }

  /** Where a message lives (in queue/, or in hold/ when `area` says so); for tests and operators. */
  messagePath(id: string, area: SpoolArea = 'queue'): string {
    if (!isQueueId(id)) throw new Error(`not a queue id: ${JSON.stringify(id)}`);
    return join(this.dir, area, bucketOf(id), id);
  }

  /**
   * Starts a message. Write the message bytes (the Received header first) with `write`, then
   * `commit` — or `abort`.
   */
  begin(env: NewEnvelope): SpoolWriter {
    this.#assertOpen();
    const receivedAt = env.receivedAt ?? Date.now();
    const envelope = { ...env, id: env.id ?? newQueueId(receivedAt), receivedAt };
    const finalPath = this.messagePath(envelope.id);
    // Refuse now what would be unreadable later: a message acknowledged but unreadable is lost.
    const problem = envelopeProblem(envelope);
    if (problem) throw new Error(`cannot queue message ${envelope.id}: ${problem}`);
    return new SpoolWriter({
      envelope,
      header: encodeHeader(envelope),
      tmpPath: join(this.dir, 'incoming', envelope.id),
      finalDir: join(finalPath, '..'),
      finalPath,
      pathFor: (area: SpoolArea) => this.messagePath(envelope.id, area),
      syncer: this.#syncer,
      fsync: this.#fsync,
      memoryLimit: this.#memoryLimit,
      assertOpen: () => this.#assertOpen(),
      committed: (e) => this.#emitCommit(e),
    });
  }

  /** Calls `fn` after every commit (the queue uses it to start delivery at once). */
  onCommit(fn: (env: Envelope) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Every queued message with its recipient states, without reading message bodies. Streams
   * folder by folder; the order is by id within a folder, not overall. Corrupt files are moved
   * aside and skipped. Headers are read with synchronous calls in slices of a few milliseconds,
   * yielding to the event loop between slices (see the decision record for the figures).
   * `area: 'hold'` lists the messages on hold instead.
   */
  async *list(area: SpoolArea = 'queue'): AsyncGenerator<SpooledMessage> {
    let sliceStart = performance.now();
    for (const b of BUCKETS) {
      const dir = join(this.dir, area, b);
      const names = (await readdir(dir)).sort();
      for (const name of names) {
        const m = this.#listOne(dir, b, name);
        if (typeof m === 'string') await this.#quarantine(join(dir, name), m);
        else if (m) yield m;
        if (performance.now() - sliceStart > LIST_SLICE_MS) {
          await new Promise<void>((r) => setImmediate(r));
          sliceStart = performance.now();
        }
      }
    }
  }

  /** One message's envelope and states; undefined when it is not (or no longer) queued. */
  async get(id: string, area: SpoolArea = 'queue'): Promise<SpooledMessage | undefined> {
    if (!isQueueId(id)) return undefined;
    return this.#load(id, area);
  }

  /** The message bytes; the stream errors with SpoolCorruptError if they do not match the hash. */
  openBody(id: string): BodyStream {
    const path = this.messagePath(id);
    return new BodyStream(path, id, (err) => this.#quarantine(path, err.reason));
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
    return this.#serial(id, async () => {
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
      } finally {
        await fh.close();
      }
    });
  }

  /**
   * Removes a message whose recipients are all final. Not fsync'd on purpose: if a crash undoes
   * the unlink, the file comes back with every recipient final and the next start removes it.
   */
  remove(id: string): Promise<void> {
    this.#assertOpen();
    const path = this.messagePath(id);
    return this.#serial(id, async () => {
      await unlink(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    });
  }

  /**
   * Moves a message between queue/ and hold/ (postsuper -h / -H): a held message is never
   * scheduled, also not after a restart. Resolves false when it is not in the `from` area. The
   * caller makes sure no delivery of it is under way (its state records would be lost).
   */
  move(id: string, from: SpoolArea, to: SpoolArea): Promise<boolean> {
    this.#assertOpen();
    const src = this.messagePath(id, from);
    const dst = this.messagePath(id, to);
    let moved = false;
    return this.#serial(id, async () => {
      try {
        await rename(src, dst);
        moved = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        return;
      }
      // Both folder entries changed; the two fsyncs coalesce with concurrent moves.
      await Promise.all([this.#syncer.sync(join(dst, '..')), this.#syncer.sync(join(src, '..'))]);
    }).then(() => moved);
  }

  /** Removes a message from hold/ (or queue/) whatever its recipients' states: an operator's delete. */
  discard(id: string, area: SpoolArea = 'queue'): Promise<boolean> {
    this.#assertOpen();
    const path = this.messagePath(id, area);
    let removed = false;
    return this.#serial(id, async () => {
      try {
        await unlink(path);
        removed = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }).then(() => removed);
  }

  /** Releases the lock. Writers still open can no longer commit safely; finish them first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#busy.values()]);
    await this.#release();
  }

  // After close another process may own the spool: no more changes from this one.
  #assertOpen(): void {
    if (this.#closed) throw new Error(`spool ${this.dir} is closed`);
  }

  #emitCommit(env: Envelope): void {
    for (const fn of this.#listeners) {
      try {
        fn(env);
      } catch (err) {
        // The message is durable already; a listener's failure must not turn that into a 4xx.
        this.#log.error({ event: 'spool-listener-error', queueId: env.id, err }, 'commit listener failed');
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
      // Unreadable (permissions, I/O error) but not known to be corrupt: leave it where it is.
      this.#log.error({ event: 'spool-unreadable', path, err }, 'cannot read spool file; it stays queued but is not scheduled');
      return undefined;
    }
  }

  #loaded(path: string, m: LoadedMessage | undefined): SpooledMessage | undefined {
    if (!m) return undefined;
    if (m.torn > 0) this.#log.warn({ event: 'spool-torn-record', path, records: m.torn }, 'ignored unfinished state records (crash during an update)');
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
