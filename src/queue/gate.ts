// At most N tasks at once, for the operator commands that touch hundreds of thousands of
// messages. A counting gate, not Promise.race over the pending set: that would attach a handler
// to every pending promise for every message.

export interface Gate {
  /** Starts `task` once fewer than the limit run; resolves when it has started, not finished. */
  run(task: () => Promise<void>): Promise<void>;
  /** Resolves when every started task has settled. */
  drain(): Promise<void>;
}

/** `task`s must not reject (each handles its own failure: one message must not stop the rest). */
export function createGate(limit: number): Gate {
  let active = 0;
  let wake: (() => void) | undefined;
  let drained: (() => void) | undefined;
  return {
    async run(task) {
      active++;
      void task().finally(() => {
        active--;
        const w = wake;
        wake = undefined;
        w?.();
        if (active === 0) drained?.();
      });
      if (active >= limit) await new Promise<void>((r) => (wake = r));
    },
    async drain() {
      if (active > 0) await new Promise<void>((r) => (drained = r));
    },
  };
}
