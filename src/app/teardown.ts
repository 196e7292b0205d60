// What a process started, stopped again in reverse order: the server (compose.ts) and each
// acceptor process (acceptor-main.ts). A step that fails is logged and the rest still run.
import type { Logger } from '../observe/log.ts';

export class Teardown {
  readonly #log: Logger;
  readonly #steps: Array<() => unknown> = [];

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Adds a step; the last added runs first. */
  push(step: () => unknown): void {
    this.#steps.push(step);
  }

  /** Runs every step once, last added first. */
  async run(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        this.#log.error({ err: String(err) }, 'error while stopping');
      }
    }
  }
}
