// Remembers whether the store backend is down so an outage is logged once when it starts and once
// when it ends, however many operations fail in between (a busy MX would otherwise log thousands
// of identical lines per minute).
import type { Logger } from '../observe/log.ts';
import type { StoreBackend } from './store.ts';

export class OutageTracker {
  private downSince: number | undefined;
  private gen = 0;

  constructor(
    private readonly log: Logger,
    private readonly backend: StoreBackend,
  ) {}

  get isDown(): boolean {
    return this.downSince !== undefined;
  }

  /** Bumped at each recovery. An operation started before a recovery must not report an outage
   * after it (its failure is old news), so callers pass the generation they started in. */
  get generation(): number {
    return this.gen;
  }

  markDown(reason: string, startedInGeneration = this.gen): void {
    if (this.downSince !== undefined || startedInGeneration !== this.gen) return;
    this.downSince = Date.now();
    this.log.error({ store: this.backend, reason }, 'store unavailable');
  }

  markUp(): void {
    if (this.downSince === undefined) return;
    const downMs = Date.now() - this.downSince;
    this.downSince = undefined;
    this.gen++;
    this.log.info({ store: this.backend, downMs }, 'store recovered');
  }
}
