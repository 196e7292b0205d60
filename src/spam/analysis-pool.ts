// Worker threads that read messages (MIME, tokens, rules) off the event loop. Reading is the
// CPU-heavy half of scoring; the other half (store reads, Bayes) stays on the main thread, so
// with one worker a two-core machine scores about twice as many messages, and a large HTML
// spam never stalls the SMTP sessions in between.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { PackedAnalysisData } from './analysis.ts';
import type { RuleContext } from './rules.ts';

export interface AnalysisPoolOptions {
  /** Worker threads (default: one fewer than the CPUs, at least 1). */
  readonly size?: number;
  /** Bytes of each message read (default 512 KiB). */
  readonly maxBytes?: number;
}

interface Job {
  readonly resolve: (d: PackedAnalysisData) => void;
  readonly reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  readonly jobs: Map<number, Job>;
}

export type AnalysisRequest = { readonly id: number; readonly raw: Uint8Array; readonly maxBytes: number; readonly ctx: RuleContext; readonly seed?: number };
export type AnalysisReply = { readonly id: number; readonly data?: PackedAnalysisData; readonly error?: string };

// The worker is a .js file once built. Run from source (tsx), it is a .ts file, and Node 20 does
// not apply the parent's --import loader to a worker's entry module: a two-line bootstrap
// registers tsx in the worker first.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(`./analysis-worker${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url);
const SOURCE_BOOTSTRAP = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`;

export class AnalysisPool {
  private readonly slots: Slot[] = [];
  private readonly maxBytes: number;
  private next = 0;
  private seq = 0;
  private closed = false;
  private failures = 0;
  private broken: Error | undefined;

  constructor(opts: AnalysisPoolOptions = {}) {
    const size = Math.max(1, opts.size ?? availableParallelism() - 1);
    this.maxBytes = opts.maxBytes ?? 512 * 1024;
    for (let i = 0; i < size; i++) this.slots.push({ worker: this.spawn(i), jobs: new Map() });
  }

  get size(): number {
    return this.slots.length;
  }

  /** Reads one message in the least busy worker; with a seed, its tokens come back hashed too. */
  run(raw: Buffer | string, ctx: RuleContext, seed?: number): Promise<PackedAnalysisData> {
    if (this.closed) return Promise.reject(this.broken ?? new Error('the spam analysis pool is closed'));
    let slot = this.slots[this.next % this.slots.length]!;
    for (const s of this.slots) if (s.jobs.size < slot.jobs.size) slot = s;
    this.next++;
    const id = ++this.seq;
    // One copy of the part that is read, handed over (a Buffer may be a slice of a shared pool,
    // which must not be transferred away).
    const bytes = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw;
    const copy = new Uint8Array(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, this.maxBytes)).slice();
    const msg: AnalysisRequest = { id, raw: copy, maxBytes: this.maxBytes, ctx, ...(seed !== undefined ? { seed } : {}) };
    return new Promise<PackedAnalysisData>((resolve, reject) => {
      // Referenced while it has work, so a waiting caller keeps the process alive.
      if (slot.jobs.size === 0) slot.worker.ref();
      slot.jobs.set(id, { resolve, reject });
      slot.worker.postMessage(msg, [copy.buffer]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(index: number): Worker {
    // Workers inherit the parent's execArgv (e.g. the tsx loader); unref'd while idle, they never
    // keep a process alive that has nothing else to do.
    const w = FROM_SOURCE ? new Worker(SOURCE_BOOTSTRAP, { eval: true, name: `spam-analysis-${index}` }) : new Worker(WORKER_URL, { name: `spam-analysis-${index}` });
    w.unref();
    // Again once it runs: an unref before then leaves the worker's message ports holding the
    // event loop, which showed once small messages stopped coming here (filter.ts INLINE_BYTES).
    w.once('online', () => {
      if ((this.slots[index]?.jobs.size ?? 0) === 0) w.unref();
    });
    let lastError: Error | undefined;
    w.on('message', (m: AnalysisReply) => {
      const slot = this.slots[index];
      const job = slot?.jobs.get(m.id);
      if (!slot || !job) return;
      this.failures = 0;
      slot.jobs.delete(m.id);
      if (slot.jobs.size === 0) w.unref();
      if (m.data) job.resolve(m.data);
      else job.reject(new Error(m.error ?? 'spam analysis failed'));
    });
    w.on('error', (err) => (lastError = err));
    w.on('exit', (code) => {
      if (!this.closed) this.fail(index, lastError ?? new Error(`spam analysis worker exited with code ${code}`));
    });
    return w;
  }

  /** A worker died: its jobs fail (the check then defers those messages) and a new one starts,
   * unless workers keep dying without answering anything (a broken install): then the pool
   * stops and every call fails with the cause. */
  private fail(index: number, err: Error): void {
    const slot = this.slots[index];
    if (!slot) return;
    for (const job of slot.jobs.values()) job.reject(err);
    slot.jobs.clear();
    if (++this.failures > 3) {
      this.closed = true;
      this.broken = err;
      return;
    }
    slot.worker = this.spawn(index);
  }
}
