// Retry policy: what a delivery outcome does to a recipient's state. Exponential backoff with
// Postfix-like defaults (first retry after 5 minutes, at most an hour apart, give up after 5 days).
// Pure functions; the queue and the worker apply them.
import type { RecipientState } from './envelope.ts';

export type DeliveryOutcome = 'ok' | 'temporary' | 'permanent';

export interface RetryPolicy {
  /** Delay after the first temporary failure (Postfix minimal_backoff_time: 300s). */
  readonly minBackoffMs: number;
  /** Longest delay between two attempts (Postfix maximal_backoff_time: 4000s). */
  readonly maxBackoffMs: number;
  /** After this age a temporary failure bounces (Postfix maximal_queue_lifetime: 5d). */
  readonly maxAgeMs: number;
}

export const defaultRetryPolicy: RetryPolicy = Object.freeze({
  minBackoffMs: 5 * 60_000,
  maxBackoffMs: 60 * 60_000,
  maxAgeMs: 5 * 24 * 60 * 60_000,
});

/** Delay after `failures` consecutive temporary failures (1 → minBackoff, then doubling). */
export function backoffMs(failures: number, p: RetryPolicy): number {
  const exp = Math.min(Math.max(failures, 1) - 1, 40);
  return Math.min(p.maxBackoffMs, p.minBackoffMs * 2 ** exp);
}

/**
 * The state after an attempt. A temporary failure of a message older than maxAge bounces
 * (RFC 5321 §4.5.4.1: give up after 4-5 days); the bounce keeps the last reply as its reason.
 */
export function nextState(prev: RecipientState, outcome: DeliveryOutcome, reply: string, receivedAt: number, now: number, p: RetryPolicy): RecipientState {
  const attempts = prev.attempts + 1;
  if (outcome === 'ok') return { status: 'delivered', attempts, lastReply: reply, updatedAt: now };
  if (outcome === 'permanent') return { status: 'bounced', attempts, lastReply: reply, updatedAt: now };
  if (now - receivedAt >= p.maxAgeMs) return { status: 'bounced', attempts, lastReply: reply, updatedAt: now };
  return { status: 'deferred', attempts, nextAttemptAt: now + backoffMs(attempts, p), lastReply: reply, updatedAt: now };
}

/** Whether a recipient should be tried in a pass at `now`. */
export function isDue(s: RecipientState, now: number): boolean {
  return s.status === 'pending' || (s.status === 'deferred' && (s.nextAttemptAt ?? 0) <= now);
}

/** When a message is next due: now if any recipient is pending, else the earliest deferral; undefined when all are final. */
export function messageDueAt(states: readonly RecipientState[], now: number): number | undefined {
  let due: number | undefined;
  for (const s of states) {
    if (s.status === 'pending') return now;
    if (s.status === 'deferred') due = Math.min(due ?? Infinity, s.nextAttemptAt ?? now);
  }
  return due;
}
