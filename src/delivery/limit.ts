// A concurrency limit per key (a destination domain, a smarthost): at most `limit` holders at once
// per key, the rest wait in arrival order. Postfix calls this the destination concurrency limit;
// it keeps one busy domain from taking every connection, and a small receiver from being flooded.

export class KeyedLimit {
  readonly #limit: number;
  readonly #active = new Map<string, number>();
  readonly #waiting = new Map<string, Array<() => void>>();

  constructor(limit: number) {
    if (!(limit >= 1)) throw new Error(`concurrency limit ${limit}: set it to 1 or more`);
    this.#limit = limit;
  }

  /** Holders of `key` right now. */
  active(key: string): number {
    return this.#active.get(key) ?? 0;
  }

  /**
   * Runs `fn` once `key` has a free slot, and resolves with its result. The slot is given back
   * when `fn` has settled and so has every promise it handed to `keepUntil` (an SMTP connection
   * still closing after its outcome is known: the receiver counts it until it is closed).
   */
  async run<T>(key: string, fn: (keepUntil: (p: Promise<unknown>) => void) => Promise<T>): Promise<T> {
    await this.#acquire(key);
    const kept: Array<Promise<unknown>> = [];
    try {
      return await fn((p) => void kept.push(p));
    } finally {
      if (kept.length === 0) this.#release(key);
      else void Promise.allSettled(kept).then(() => this.#release(key));
    }
  }

  #acquire(key: string): Promise<void> {
    const n = this.#active.get(key) ?? 0;
    if (n < this.#limit) {
      this.#active.set(key, n + 1);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const list = this.#waiting.get(key) ?? [];
      list.push(resolve);
      this.#waiting.set(key, list);
    });
  }

  #release(key: string): void {
    const list = this.#waiting.get(key);
    const next = list?.shift();
    if (next) {
      // The slot passes straight to the next waiter.
      if (list!.length === 0) this.#waiting.delete(key);
      next();
      return;
    }
    const n = (this.#active.get(key) ?? 1) - 1;
    if (n <= 0) this.#active.delete(key);
    else this.#active.set(key, n);
  }
}
