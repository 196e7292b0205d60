// Reader threads for the start-up scan without a catalog snapshot (docs/decisions/0045): the
// open/read/close of every spool file and its parse and checksums (three quarters of the scan's
// CPU, 0037) run beside the event loop, which only loads the cells they send into the catalog.
// Started for a scan that has many files to read, closed when it ends.
import { availableParallelism } from 'node:os';
import { WorkerPool } from '../core/worker-pool.ts';
import type { RowsRequest, ScanRows } from './scan-rows.ts';

const WORKER_URL = new URL(`./scan-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Reader threads by default: one per CPU (the event loop's share of the scan is small). */
export const defaultScanThreads = (): number => Math.max(1, availableParallelism());

export class ScanPool {
  readonly #pool: WorkerPool<RowsRequest, ScanRows>;

  constructor(threads: number) {
    this.#pool = new WorkerPool({ url: WORKER_URL, name: 'spool-scan', size: threads });
  }

  read(dir: string, names: readonly string[]): Promise<ScanRows> {
    return this.#pool.run({ dir, names });
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
