// Which queued messages an operator means: by sender, recipient, recipient domain, age and state.
// Pure functions over an envelope and its recipient states, shared by `queue list` (reading the
// spool) and the commands that change it (hold, release, delete, flush, requeue).
import type { Envelope, RecipientState } from './envelope.ts';

/** The state of a message as a whole: on hold, waiting for a retry, or not tried yet. */
export type MessageState = 'held' | 'deferred' | 'pending';
export const MESSAGE_STATES: readonly MessageState[] = ['held', 'deferred', 'pending'];

export interface QueueFilter {
  /** The envelope sender: an address, "<>" for the null sender, or "@domain" for a whole domain. */
  readonly sender?: string;
  /** Any recipient (as given at RCPT, or its target mailbox): an address or "@domain". */
  readonly recipient?: string;
  /** Any recipient's domain (exact). */
  readonly domain?: string;
  /** Received longer ago than this (ms). */
  readonly olderThanMs?: number;
  readonly state?: MessageState;
}

/** Held when on hold; else deferred when any recipient still to go has been tried; else pending. */
export function messageState(states: readonly RecipientState[], held: boolean): MessageState {
  if (held) return 'held';
  return states.some((s) => s.status === 'deferred') ? 'deferred' : 'pending';
}

const lower = (s: string): string => s.toLowerCase();
const domainOf = (address: string): string => lower(address.slice(address.lastIndexOf('@') + 1));

/** An address pattern: exact (case-insensitive), "@domain" for the whole domain, "<>" or "" for the null sender. */
function addressMatcher(pattern: string): (address: string) => boolean {
  const p = lower(pattern.trim());
  if (p === '<>' || p === '') return (a) => a === '';
  const bare = p.startsWith('<') && p.endsWith('>') ? p.slice(1, -1) : p;
  if (bare.startsWith('@')) {
    const d = bare.slice(1);
    return (a) => a !== '' && domainOf(a) === d;
  }
  return (a) => lower(a) === bare;
}

export type MessagePredicate = (env: Envelope, states: readonly RecipientState[], held: boolean) => boolean;

/** Compiles a filter once; the predicate is then cheap enough for 400,000 messages. */
export function compileFilter(f: QueueFilter, now: number = Date.now()): MessagePredicate {
  const tests: MessagePredicate[] = [];
  if (f.sender !== undefined) {
    const m = addressMatcher(f.sender);
    tests.push((env) => m(env.mailFrom));
  }
  if (f.recipient !== undefined) {
    const m = addressMatcher(f.recipient);
    tests.push((env) => env.recipients.some((r) => m(r.address) || (r.mailbox !== undefined && m(r.mailbox))));
  }
  if (f.domain !== undefined) {
    const d = lower(f.domain.trim().replace(/^@/, '').replace(/\.$/, ''));
    tests.push((env) => env.recipients.some((r) => domainOf(r.address) === d || (r.mailbox !== undefined && domainOf(r.mailbox) === d)));
  }
  if (f.olderThanMs !== undefined) {
    const before = now - f.olderThanMs;
    tests.push((env) => env.receivedAt < before);
  }
  if (f.state !== undefined) {
    const want = f.state;
    tests.push((_env, states, held) => messageState(states, held) === want);
  }
  return (env, states, held) => tests.every((t) => t(env, states, held));
}

/** True when the filter selects nothing in particular (every message). */
export const isEmptyFilter = (f: QueueFilter): boolean =>
  f.sender === undefined && f.recipient === undefined && f.domain === undefined && f.olderThanMs === undefined && f.state === undefined;
