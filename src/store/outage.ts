// Remembers whether the store backend is down so an outage is logged once when it starts and once
// when it ends, however many operations fail in between (a busy MX would otherwise log thousands
// of identical lines per minute). The bookkeeping is core/outage.ts; this adds the store's words.
import { Outage } from '../core/outage.ts';
import type { Logger } from '../observe/log.ts';
import type { StoreBackend } from './store.ts';

export class OutageTracker {
  readonly #outage = new Outage();

  constructor(
    private readonly log: Logger,
    private readonly backend: StoreBackend,
  ) {}

  get isDown(): boolean {
    return this.#outage.isDown;
  }

  /** Bumped at each recovery. An operation started before a recovery must not report an outage
   * after it (its failure is old news), so callers pass the generation they started in. */
  get generation(): number {
    return this.#outage.generation;
  }

  markDown(reason: string, startedInGeneration = this.generation): void {
    if (!this.#outage.fail(startedInGeneration)) return;
    this.log.error({ store: this.backend, reason }, 'store unavailable');
  }

  markUp(): void {
    const end = this.#outage.recover();
    if (!end) return;
    this.log.info({ store: this.backend, downMs: end.downMs, failures: end.failures }, 'store recovered');
  }
}
