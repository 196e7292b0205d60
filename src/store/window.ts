// Sliding-window rate estimate from two fixed buckets (the method Cloudflare and nginx-style
// limiters use): O(1) state per key — bucket index b, its count c, the previous bucket's count p.
// The Redis implementation runs the same steps in Lua (redis-scripts.ts); keep the two in step.

export interface WindowState {
  /** Index of the current bucket: floor(now / windowMs). */
  readonly b: number;
  /** Hits in bucket b. */
  readonly c: number;
  /** Hits in bucket b - 1. */
  readonly p: number;
}

export interface WindowStep {
  readonly next: WindowState;
  /** Estimated hits in (now - windowMs, now]. */
  readonly estimate: number;
}

/**
 * Advances the state to `nowMs`, adds `by`, and estimates the count: the previous bucket is
 * assumed to be spread evenly, so the part of it still inside the sliding window is
 * p * (1 - elapsed / windowMs), where elapsed is the time since the current bucket began.
 */
export function slide(state: WindowState | undefined, nowMs: number, windowMs: number, by: number): WindowStep {
  const bucket = Math.floor(nowMs / windowMs);
  let c = 0;
  let p = 0;
  if (state !== undefined) {
    if (state.b === bucket) {
      c = state.c;
      p = state.p;
    } else if (state.b === bucket - 1) {
      p = state.c;
    }
    // Older than one bucket (or a clock step backwards): nothing of it lies in the window.
  }
  c += by;
  const elapsed = nowMs - bucket * windowMs;
  const estimate = (p * (windowMs - elapsed)) / windowMs + c;
  return { next: { b: bucket, c, p }, estimate };
}
