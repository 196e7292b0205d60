// Which queued messages an operator means: by sender, recipient, recipient domain, age and state.
// Pure functions, shared by `queue list` (reading the spool), the server's in-memory catalog
// (catalog.ts, which asks the same address tests, domain tests once per domain) and the commands
// that change the queue (hold, release, delete, flush, requeue).
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
  /** The SMTP AUTH login that submitted it (case-insensitive; "" for mail without one). */
  readonly login?: string;
}

/** Held when on hold; else deferred when any recipient still to go has been tried; else pending. */
export function messageState(states: readonly RecipientState[], held: boolean): MessageState {
  if (held) return 'held';
  return states.some((s) => s.status === 'deferred') ? 'deferred' : 'pending';
}

const lower = (s: string): string => s.toLowerCase();
const domainOf = (address: string): string => lower(address.slice(address.lastIndexOf('@') + 1));

/**
 * A test of one address, with the same answer in parts for callers that keep addresses split at
 * the last "@" (the catalog), so they can ask once per domain:
 * - `byDomain`: for an address with an "@", the answer from the part after the last "@" alone;
 * - `exact`: the answer is "the lower-cased part before the last '@' is `local`, and the
 *   lower-cased part after it is `domain`" (undefined: the address has no "@").
 */
export interface AddressTest {
  (address: string): boolean;
  readonly byDomain?: (domain: string) => boolean;
  readonly exact?: { readonly local: string; readonly domain: string | undefined };
}

/** An address pattern: exact (case-insensitive), "@domain" for the whole domain, "<>" or "" for the null sender. */
function addressTest(pattern: string): AddressTest {
  const p = lower(pattern.trim());
  if (p === '<>' || p === '') return (a: string) => a === '';
  const bare = p.startsWith('<') && p.endsWith('>') ? p.slice(1, -1) : p;
  if (bare.startsWith('@')) return domainTest(bare.slice(1));
  // Lower-casing never adds or removes an "@", and its one context rule (a final sigma) stops at
  // an "@" (neither cased nor case-ignorable): so lower(a) is lower(local) + "@" + lower(domain),
  // and the whole compares equal exactly when both parts do.
  const at = bare.lastIndexOf('@');
  const exact = at < 0 ? { local: bare, domain: undefined } : { local: bare.slice(0, at), domain: bare.slice(at + 1) };
  return Object.assign((a: string) => lower(a) === bare, { exact });
}

/** Addresses in domain `d` (lower case): an address with an "@" is never "". */
function domainTest(d: string): AddressTest {
  return Object.assign((a: string) => a !== '' && domainOf(a) === d, { byDomain: (domain: string) => lower(domain) === d });
}

/**
 * A filter taken apart: one test per address (the sender; each recipient's address or mailbox),
 * an arrival-time bound and a state, for callers that keep messages in their own form.
 */
export interface FilterParts {
  readonly sender?: AddressTest;
  /** True when this recipient address (or mailbox) is the one asked for. */
  readonly recipient?: AddressTest;
  /** True when this recipient address (or mailbox) is in the domain asked for. */
  readonly domain?: AddressTest;
  /** Only messages received before this time (ms since the epoch). */
  readonly receivedBefore?: number;
  readonly state?: MessageState;
  /** The login, lower-cased ("" for none). */
  readonly login?: string;
}

export function filterParts(f: QueueFilter, now: number = Date.now()): FilterParts {
  const parts: { -readonly [K in keyof FilterParts]: FilterParts[K] } = {};
  if (f.sender !== undefined) parts.sender = addressTest(f.sender);
  if (f.recipient !== undefined) parts.recipient = addressTest(f.recipient);
  if (f.domain !== undefined) {
    const d = lower(f.domain.trim().replace(/^@/, '').replace(/\.$/, ''));
    // Not domainTest: "" has no domain, yet domainOf("") === "" (a filter for domain "" matches it, as before).
    parts.domain = Object.assign((a: string) => domainOf(a) === d, { byDomain: (domain: string) => lower(domain) === d });
  }
  if (f.olderThanMs !== undefined) parts.receivedBefore = now - f.olderThanMs;
  if (f.state !== undefined) parts.state = f.state;
  if (f.login !== undefined) parts.login = lower(f.login.trim());
  return parts;
}

export type MessagePredicate = (env: Envelope, states: readonly RecipientState[], held: boolean) => boolean;

/** Compiles a filter once; the predicate is then cheap enough for 400,000 messages. */
export function compileFilter(f: QueueFilter, now: number = Date.now()): MessagePredicate {
  const p = filterParts(f, now);
  const tests: MessagePredicate[] = [];
  const { sender, recipient, domain, receivedBefore, state, login } = p;
  if (sender) tests.push((env) => sender(env.mailFrom));
  if (recipient) tests.push((env) => env.recipients.some((r) => recipient(r.address) || (r.mailbox !== undefined && recipient(r.mailbox))));
  if (domain) tests.push((env) => env.recipients.some((r) => domain(r.address) || (r.mailbox !== undefined && domain(r.mailbox))));
  if (receivedBefore !== undefined) tests.push((env) => env.receivedAt < receivedBefore);
  if (state !== undefined) tests.push((_env, states, held) => messageState(states, held) === state);
  if (login !== undefined) tests.push((env) => lower(env.client.login ?? '') === login);
  return (env, states, held) => tests.every((t) => t(env, states, held));
}

/** True when the filter selects nothing in particular (every message). */
export const isEmptyFilter = (f: QueueFilter): boolean =>
  f.sender === undefined && f.recipient === undefined && f.domain === undefined && f.olderThanMs === undefined && f.state === undefined && f.login === undefined;
