// Worker threads that read messages (MIME, tokens, rules) off the event loop. Reading is the
// CPU-heavy half of scoring; the other half (store reads, Bayes) stays on the main thread, so
// with one worker a two-core machine scores about twice as many messages, and a large HTML
// spam never stalls the SMTP sessions in between. The threads are a core/worker-pool.ts pool.
import { availableParallelism } from 'node:os';
import { WorkerPool } from '../core/worker-pool.ts';
import type { PackedAnalysisData } from './analysis.ts';
import type { RuleContext } from './rules.ts';

export interface AnalysisPoolOptions {
  /** Worker threads (default: one fewer than the CPUs, at least 1). */
  readonly size?: number;
  /** Bytes of each message read (default 512 KiB). */
  readonly maxBytes?: number;
}

export type AnalysisRequest = { readonly raw: Uint8Array; readonly maxBytes: number; readonly ctx: RuleContext; readonly seed?: number };

const WORKER_URL = new URL(`./analysis-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export class AnalysisPool {
  private readonly pool: WorkerPool<AnalysisRequest, PackedAnalysisData>;
  private readonly maxBytes: number;

  constructor(opts: AnalysisPoolOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 512 * 1024;
    this.pool = new WorkerPool({ url: WORKER_URL, name: 'spam-analysis', size: Math.max(1, opts.size ?? availableParallelism() - 1) });
  }

  get size(): number {
    return this.pool.size;
  }

  /** Reads one message in the least busy worker; with a seed, its tokens come back hashed too. */
  run(raw: Buffer | string, ctx: RuleContext, seed?: number): Promise<PackedAnalysisData> {
    // One copy of the part that is read, handed over (a Buffer may be a slice of a shared pool,
    // which must not be transferred away).
    const bytes = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw;
    const copy = new Uint8Array(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, this.maxBytes)).slice();
    const msg: AnalysisRequest = { raw: copy, maxBytes: this.maxBytes, ctx, ...(seed !== undefined ? { seed } : {}) };
    return this.pool.run(msg, [copy.buffer]);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
