// Group commit for directory fsyncs: one fsync of a directory makes durable every rename into it
// that finished before the fsync started, so callers that arrive while one runs share the next.
// Used for the spool's queue folders (held open, so a commit's folder fsync is one call) and for
// Maildir new/ folders (opened per fsync: there may be any number of them).
import { RawFile } from '../core/raw-file.ts';

/** fsync a file or directory by path (a directory fsync persists its entries, e.g. a rename). */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await RawFile.open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

interface DirBatch {
  running: boolean;
  waiting: Waiter[];
}

export interface DirSyncerOptions {
  /** false: no fsync at all (tests and benchmarks that say so). */
  readonly enabled: boolean;
  /** false: one fsync per request, for measuring what coalescing saves. */
  readonly coalesce?: boolean;
}

export class DirSyncer {
  /** Directory fsyncs actually made. */
  fsyncs = 0;
  /** Calls to `sync`. */
  requests = 0;
  readonly #dirs = new Map<string, DirBatch>();
  readonly #enabled: boolean;
  readonly #coalesce: boolean;
  /** Folders whose descriptor is kept open once used (the spool's 96 bucket folders). */
  readonly #keep = new Set<string>();
  readonly #held = new Map<string, RawFile>();
  /** Folder fsyncs under way (close waits for them before closing the held descriptors). */
  readonly #inFlight = new Set<Promise<void>>();
  #closed = false;

  constructor(opts: DirSyncerOptions) {
    this.#enabled = opts.enabled;
    this.#coalesce = opts.coalesce ?? true;
  }

  /**
   * Keeps the descriptors of `dirs` open from their first fsync until `close`, and fsyncs the held
   * descriptor: an fsync of any descriptor of a folder persists its entries (fsync(2)).
   */
  keepOpen(dirs: Iterable<string>): void {
    for (const d of dirs) this.#keep.add(d);
  }

  /** Folder descriptors held open now. */
  get heldOpen(): number {
    return this.#held.size;
  }

  /** Closes the held descriptors once their fsyncs end; later fsyncs open the folder each time. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    const held = [...this.#held.values()];
    this.#held.clear();
    await Promise.allSettled(held.map((fh) => fh.close()));
  }

  /** Resolves once `dir` has been fsync'd by an fsync that started after this call. */
  sync(dir: string): Promise<void> {
    this.requests++;
    if (!this.#enabled) return Promise.resolve();
    if (!this.#coalesce) {
      this.fsyncs++;
      return this.#fsync(dir);
    }
    let batch = this.#dirs.get(dir);
    if (!batch) {
      batch = { running: false, waiting: [] };
      this.#dirs.set(dir, batch);
    }
    const b = batch;
    return new Promise<void>((resolve, reject) => {
      b.waiting.push({ resolve, reject });
      // An fsync already running may have started before the caller's rename finished, so it
      // proves nothing for this caller: wait for the next round, which starts when it ends.
      if (!b.running) this.#run(dir, b);
    });
  }

  #run(dir: string, b: DirBatch): void {
    const batch = b.waiting;
    b.waiting = [];
    b.running = true;
    this.fsyncs++;
    this.#fsync(dir).then(
      () => this.#finish(dir, b, batch, undefined),
      (err: unknown) => this.#finish(dir, b, batch, err ?? new Error(`fsync ${dir} failed`)),
    );
  }

  #fsync(dir: string): Promise<void> {
    if (this.#closed || !this.#keep.has(dir)) return fsyncPath(dir);
    const p = this.#fsyncHeld(dir);
    this.#inFlight.add(p);
    const done = (): void => void this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  async #fsyncHeld(dir: string): Promise<void> {
    let fh = this.#held.get(dir);
    if (!fh) {
      const opened = await RawFile.open(dir, 'r');
      // Two first fsyncs of a folder at once (only without coalescing): keep one descriptor.
      const other = this.#held.get(dir);
      if (this.#closed && !other) {
        try {
          return await opened.sync();
        } finally {
          await opened.close();
        }
      }
      if (other) {
        await opened.close();
        fh = other;
      } else {
        this.#held.set(dir, opened);
        fh = opened;
      }
    }
    try {
      await fh.sync();
    } catch (err) {
      // A failed fsync may not be reported again on the same descriptor: start afresh.
      if (this.#held.get(dir) === fh) {
        this.#held.delete(dir);
        await fh.close().catch(() => undefined);
      }
      throw err;
    }
  }

  #finish(dir: string, b: DirBatch, batch: Waiter[], err: unknown): void {
    for (const w of batch) {
      if (err === undefined) w.resolve();
      else w.reject(err);
    }
    b.running = false;
    if (b.waiting.length > 0) this.#run(dir, b);
    else this.#dirs.delete(dir);
  }
}
