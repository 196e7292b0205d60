// Group commit for directory fsyncs: one fsync of a directory makes durable every rename into it
// that finished before the fsync started, so callers that arrive while one runs share the next.
// Used for the spool's queue folders and for Maildir new/ folders.
import { open } from 'node:fs/promises';

/** fsync a file or directory by path (a directory fsync persists its entries, e.g. a rename). */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
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

  constructor(opts: DirSyncerOptions) {
    this.#enabled = opts.enabled;
    this.#coalesce = opts.coalesce ?? true;
  }

  /** Resolves once `dir` has been fsync'd by an fsync that started after this call. */
  sync(dir: string): Promise<void> {
    this.requests++;
    if (!this.#enabled) return Promise.resolve();
    if (!this.#coalesce) {
      this.fsyncs++;
      return fsyncPath(dir);
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
    fsyncPath(dir).then(
      () => this.#finish(dir, b, batch, undefined),
      (err: unknown) => this.#finish(dir, b, batch, err ?? new Error(`fsync ${dir} failed`)),
    );
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
