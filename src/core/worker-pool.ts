// A small pool of worker threads for CPU-heavy jobs that must not run on the event loop or on
// libuv's shared threadpool (which also does every fs call of the spool). One request/reply
// protocol ({ id, ... } → { id, value | error }); a bound on jobs in flight so a flood is refused
// at once instead of queued without end; a dead worker is replaced, and a pool whose workers keep
// dying without answering stops (a broken install) and fails every call with the cause.
import { Worker, parentPort, type TransferListItem } from 'node:worker_threads';

export interface WorkerPoolOptions {
  /** The worker's entry module (a .ts file when run from source, .js once built). */
  readonly url: URL;
  /** Thread name prefix (shows in diagnostics). */
  readonly name: string;
  /** Worker threads, at least 1. */
  readonly size: number;
  /** Jobs that may wait for a busy worker beyond one per worker (default: no bound). */
  readonly maxQueued?: number;
}

/** Thrown by run() when every worker is busy and the queue holds `maxQueued` jobs. */
export class WorkerPoolFullError extends Error {
  constructor(name: string, limit: number) {
    super(`${name}: all workers busy and ${limit} jobs waiting`);
    this.name = 'WorkerPoolFullError';
  }
}

interface Job<R> {
  readonly resolve: (r: R) => void;
  readonly reject: (e: Error) => void;
}

interface Slot<R> {
  worker: Worker;
  readonly jobs: Map<number, Job<R>>;
}

type Request<Q> = { readonly id: number; readonly body: Q };
type Reply<R> = { readonly id: number; readonly value?: R; readonly error?: string };

export class WorkerPool<Q, R> {
  private readonly slots: Array<Slot<R>> = [];
  private readonly maxInFlight: number;
  private inFlight = 0;
  private next = 0;
  private seq = 0;
  private closed = false;
  private failures = 0;
  private broken: Error | undefined;

  constructor(private readonly opts: WorkerPoolOptions) {
    const size = Math.max(1, Math.floor(opts.size));
    this.maxInFlight = size + (opts.maxQueued ?? Infinity);
    for (let i = 0; i < size; i++) this.slots.push({ worker: this.spawn(i), jobs: new Map() });
  }

  get size(): number {
    return this.slots.length;
  }

  /** Jobs running or waiting now. */
  get pending(): number {
    return this.inFlight;
  }

  /** Runs one job in the least busy worker; `transfer` lists buffers handed over, not copied. */
  run(body: Q, transfer: readonly TransferListItem[] = []): Promise<R> {
    if (this.closed) return Promise.reject(this.broken ?? new Error(`${this.opts.name}: the pool is closed`));
    if (this.inFlight >= this.maxInFlight) return Promise.reject(new WorkerPoolFullError(this.opts.name, this.maxInFlight - this.slots.length));
    let slot = this.slots[this.next % this.slots.length]!;
    for (const s of this.slots) if (s.jobs.size < slot.jobs.size) slot = s;
    this.next++;
    const id = ++this.seq;
    this.inFlight++;
    return new Promise<R>((resolve, reject) => {
      // Referenced while it has work, so a waiting caller keeps the process alive.
      if (slot.jobs.size === 0) slot.worker.ref();
      slot.jobs.set(id, { resolve, reject });
      const msg: Request<Q> = { id, body };
      slot.worker.postMessage(msg, [...transfer]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(index: number): Worker {
    const url = this.opts.url;
    const name = `${this.opts.name}-${index}`;
    // Run from source (tsx), the entry is a .ts file, and Node 20 does not apply the parent's
    // --import loader to a worker's entry module: a two-line bootstrap registers tsx first.
    const w = url.pathname.endsWith('.ts')
      ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`, { eval: true, name })
      : new Worker(url, { name });
    // Unref'd while idle, workers never keep a process alive that has nothing else to do.
    w.unref();
    // Again once it runs: an unref before then leaves the worker's message ports holding the
    // event loop.
    w.once('online', () => {
      if ((this.slots[index]?.jobs.size ?? 0) === 0) w.unref();
    });
    let lastError: Error | undefined;
    w.on('message', (m: Reply<R>) => {
      const slot = this.slots[index];
      const job = slot?.jobs.get(m.id);
      if (!slot || !job) return;
      this.failures = 0;
      slot.jobs.delete(m.id);
      this.inFlight--;
      if (slot.jobs.size === 0) w.unref();
      if (m.error === undefined) job.resolve(m.value as R);
      else job.reject(new Error(m.error));
    });
    w.on('error', (err) => (lastError = err));
    w.on('exit', (code) => {
      if (!this.closed) this.fail(index, lastError ?? new Error(`${name} exited with code ${code}`));
    });
    return w;
  }

  /** A worker died: its jobs fail and a new one starts, unless workers keep dying. */
  private fail(index: number, err: Error): void {
    const slot = this.slots[index];
    if (!slot) return;
    for (const job of slot.jobs.values()) job.reject(err);
    this.inFlight -= slot.jobs.size;
    slot.jobs.clear();
    if (++this.failures > 3) {
      this.closed = true;
      this.broken = err;
      return;
    }
    slot.worker = this.spawn(index);
  }
}

/**
 * The worker side: answers each request with `handle`'s value (and the buffers it hands back),
 * or its error message. Call once from the worker's entry module.
 */
export function serveWorker<Q, R>(what: string, handle: (body: Q) => { readonly value: R; readonly transfer?: readonly TransferListItem[] }): void {
  const port = parentPort;
  if (!port) throw new Error(`${what} runs as a worker thread (see core/worker-pool.ts)`);
  port.on('message', (m: Request<Q>) => {
    let reply: Reply<R>;
    let transfer: readonly TransferListItem[] = [];
    try {
      const out = handle(m.body);
      reply = { id: m.id, value: out.value };
      transfer = out.transfer ?? [];
    } catch (err) {
      reply = { id: m.id, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply, [...transfer]);
  });
}
