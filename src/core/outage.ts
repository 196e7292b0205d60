// Outage bookkeeping for anything that depends on another service (the store, a DNS resolver, a
// DNS list, a smarthost): an outage is reported once when it starts and once when it ends, with
// how long it lasted and how many operations failed meanwhile. Pure: the caller does the logging.

/** What an outage that just ended amounted to. */
export interface OutageEnd {
  /** Milliseconds from its first failure to the success that ended it. */
  readonly downMs: number;
  /** Operations that failed during it, the first included. */
  readonly failures: number;
}

export class Outage {
  #downSince: number | undefined;
  #failures = 0;
  #gen = 0;
  readonly #clock: () => number;

  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
  }

  get isDown(): boolean {
    return this.#downSince !== undefined;
  }

  /** Bumped at each recovery. An operation started before a recovery must not report an outage
   * after it (its failure is old news), so callers pass the generation they started in. */
  get generation(): number {
    return this.#gen;
  }

  /** Counts a failure; true when it starts an outage (the one moment to tell the operator). */
  fail(startedInGeneration = this.#gen): boolean {
    if (startedInGeneration !== this.#gen) return false;
    this.#failures++;
    if (this.#downSince !== undefined) return false;
    this.#downSince = this.#clock();
    this.#failures = 1;
    return true;
  }

  /** A success: the outage it ends, if one was going on (the other moment to tell). */
  recover(): OutageEnd | undefined {
    if (this.#downSince === undefined) return undefined;
    const end: OutageEnd = { downMs: Math.max(0, this.#clock() - this.#downSince), failures: this.#failures };
    this.#downSince = undefined;
    this.#failures = 0;
    this.#gen++;
    return end;
  }
}
