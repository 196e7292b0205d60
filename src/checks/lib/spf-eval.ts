// One SPF evaluation (RFC 7208) per client, sender and HELO name at a time, shared by the checks
// that need it: the spf check at MAIL/RCPT and DMARC's SPF half in dkim-dmarc at DATA (RFC 7489
// §4.2) read the same result, and so do the next messages of the same burst.
import type { SPFResult } from 'mailauth';
import type { Mailbox } from '../../core/address.ts';
import type { CheckEnv, SessionFacts } from '../../pipeline/check.ts';
import { mailauthResolver } from './dns.ts';
import { ipText, parseIp } from '../../core/net.ts';
import { TtlCache } from './ttl-cache.ts';
import { DNS_CACHE_DEFAULTS } from './dns-cache.ts';

// mailauth (with its own dependencies, ~170 ms to load) is loaded on first use, not at start-up
// (docs/decisions/0018-startup.md); the dkim-dmarc check shares this loader.
let mailauth: Promise<typeof import('mailauth')> | undefined;
export const loadMailauth = (): Promise<typeof import('mailauth')> => (mailauth ??= import('mailauth'));

/** Loads mailauth ahead of the first check (after the listeners open); never rejects. */
export const warmSpf = (): Promise<unknown> => loadMailauth().catch(() => undefined);

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

// A result is kept 30 s for any session with the same client, sender and HELO name: a burst from
// one sender (a list, a busy relay) is evaluated once, not per message (mailauth's evaluation,
// CIDR parsing included, was ~5 % of the main thread per message at 4 KB × 50). 30 s is the DNS
// cache's shortest keeping time (negative answers), so a DNS change is seen no later than that
// cache would let it be seen.
const KEEP_MS = DNS_CACHE_DEFAULTS.negativeTtlMs;
const KEEP_MAX = 2000;

// Per server: every check built from one CheckEnv shares one memo, and a reload (a new env)
// starts a new one. Weakly held, so a replaced env takes its memo with it.
const memos = new WeakMap<CheckEnv, TtlCache<SPFResult>>();

const isTemporary = (r: SPFResult): boolean => {
  const result: string = r.status.result;
  return result === 'temperror' || result === 'temperr';
};

/**
 * The SPF result for `id`, evaluated once per client, sender and HELO name every KEEP_MS. A
 * temporary error is not remembered: the retry must ask again.
 */
export async function evaluateSpf(env: CheckEnv, session: SessionFacts, id: SpfIdentity, signal: AbortSignal): Promise<SPFResult> {
  let memo = memos.get(env);
  if (!memo) {
    memo = new TtlCache<SPFResult>(KEEP_MAX, env.clock);
    memos.set(env, memo);
  }
  const key = `${id.ip}\n${id.sender}\n${session.helo ?? ''}`;
  const hit = memo.get(key);
  if (hit) return hit;
  const { spf: spfVerify } = await loadMailauth();
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
