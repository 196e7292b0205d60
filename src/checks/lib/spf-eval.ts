// One SPF evaluation (RFC 7208) per transaction, shared by the checks that need it: the spf check
// at MAIL/RCPT and DMARC's SPF half in dkim-dmarc at DATA (RFC 7489 §4.2) both read the same
// result, so the second asks no DNS and runs no second evaluation.
import { spf as spfVerify } from 'mailauth';
import type { SPFResult } from 'mailauth';
import type { Mailbox } from '../../core/address.ts';
import type { CheckEnv, SessionFacts } from '../../pipeline/check.ts';
import { mailauthResolver } from './dns.ts';
import { ipText, parseIp } from '../../core/net.ts';
import { TtlCache } from './ttl-cache.ts';

/** Who is checked: the client's address and the identity SPF evaluates. */
export interface SpfIdentity {
  /** Canonical text of the client's address. */
  readonly ip: string;
  /** MAIL FROM, or postmaster@HELO for the null sender (RFC 7208 §2.4). */
  readonly sender: string;
}

/** The identity for this session and sender; undefined when there is nothing to check. */
export function spfIdentity(session: SessionFacts, from: Mailbox | null): SpfIdentity | 'no-ip' | undefined {
  const parsed = parseIp(session.clientAddress);
  if (!parsed) return 'no-ip';
  const sender = from?.address ?? (session.helo ? `postmaster@${session.helo}` : undefined);
  return sender === undefined ? undefined : { ip: ipText(parsed), sender };
}

// Evaluations last the length of a transaction; a later one with the same facts asks again.
const KEEP_MS = 10 * 60_000;
const KEEP_MAX = 2000;

// Per server: every check built from one CheckEnv shares one memo, and a reload (a new env)
// starts a new one. Weakly held, so a replaced env takes its memo with it.
const memos = new WeakMap<CheckEnv, TtlCache<SPFResult>>();

const isTemporary = (r: SPFResult): boolean => {
  const result: string = r.status.result;
  return result === 'temperror' || result === 'temperr';
};

/**
 * The SPF result for `id` in this session, evaluated once per session, client, sender and HELO
 * name. A temporary error is not remembered: the retry must ask again.
 */
export async function evaluateSpf(env: CheckEnv, session: SessionFacts, id: SpfIdentity, signal: AbortSignal): Promise<SPFResult> {
  let memo = memos.get(env);
  if (!memo) {
    memo = new TtlCache<SPFResult>(KEEP_MAX, env.clock);
    memos.set(env, memo);
  }
  const key = `${session.id}\n${id.ip}\n${id.sender}\n${session.helo ?? ''}`;
  const hit = memo.get(key);
  if (hit) return hit;
  const r = await spfVerify({
    sender: id.sender,
    ip: id.ip,
    ...(session.helo ? { helo: session.helo } : {}),
    mta: env.hostname,
    resolver: mailauthResolver(env.dns, signal),
  });
  if (!isTemporary(r)) memo.set(key, r, KEEP_MS);
  return r;
}
