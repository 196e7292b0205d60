// The daily digest of outbound volume per login: one message on the alert channels (webhook,
// postmaster mail) with the relayed recipients of each login over the last 24 clock hours, read
// from the hourly counts the baseline breaker keeps. The owner sees a login that is not theirs
// sending before any breaker trips. Sent once a day across nodes; `mailward guard digest` shows
// (and with --send sends) it at any time.
import type { Store } from '../store/store.ts';
import type { Logger } from '../observe/log.ts';
import type { Alerter } from './alerts.ts';
import { HOUR } from './baseline.ts';

const DAY = 24 * HOUR;
/** Logins named one by one in the message; the rest are summed in one line. */
const NAMED = 100;

export interface Digest {
  /** The first and the end of the clock hours counted (ms since the epoch). */
  readonly from: number;
  readonly to: number;
  /** Busiest first. */
  readonly logins: ReadonlyArray<{ readonly login: string; readonly recipients: number }>;
  readonly total: number;
}

/** The relayed recipients per login in the 24 whole clock hours before `now`. */
export async function outboundDigest(store: Store, now: number): Promise<Digest> {
  const end = Math.floor(now / HOUR);
  const per = new Map<string, number>();
  for (let h = end - 24; h < end; h++) {
    const head = `guard:n:${h}:login:`;
    for await (const key of store.scan(head)) {
      const v = Number(await store.get(key));
      if (!(v > 0)) continue;
      const login = key.slice(head.length);
      per.set(login, (per.get(login) ?? 0) + v);
    }
  }
  const logins = [...per].map(([login, recipients]) => ({ login, recipients })).sort((a, b) => b.recipients - a.recipients || a.login.localeCompare(b.login));
  return { from: (end - 24) * HOUR, to: end * HOUR, logins, total: logins.reduce((n, l) => n + l.recipients, 0) };
}

export function digestReason(d: Digest): string {
  return `${d.total} relayed recipient(s) from ${d.logins.length} login(s) in the 24 h to ${new Date(d.to).toISOString()}`;
}

/** Sends the digest on the alert channels; resolves what it sent. */
export async function sendDigest(store: Store, alerter: Alerter, now: number): Promise<Digest> {
  const d = await outboundDigest(store, now);
  const figures: Record<string, number> = {};
  for (const l of d.logins.slice(0, NAMED)) figures[l.login] = l.recipients;
  const rest = d.logins.slice(NAMED);
  if (rest.length > 0) figures[`${rest.length} other login(s)`] = rest.reduce((n, l) => n + l.recipients, 0);
  await alerter.raise({ state: 'digest', name: 'digest', kind: 'digest', reason: digestReason(d), figures, at: now });
  return d;
}

/**
 * Sends the digest once a day in the UTC hour `hour`: checked every minute, claimed with an
 * atomic set-if-absent per day so one node sends it.
 */
export function startDigestJob(o: { store: Store; alerter: Alerter; log: Logger; hour: number; clock?: () => number; intervalMs?: number }): { stop(): void } {
  const clock = o.clock ?? Date.now;
  const check = async (): Promise<void> => {
    const now = clock();
    if (Math.floor((now % DAY) / HOUR) !== o.hour) return;
    if (!(await o.store.setIfAbsent(`guard:digest:${Math.floor(now / DAY)}`, String(now), 2 * DAY))) return;
    await sendDigest(o.store, o.alerter, now);
  };
  const timer = setInterval(() => {
    check().catch((err: unknown) => o.log.error({ event: 'alert-failed', channel: 'digest', err: String(err) }, 'could not send the outbound digest; the next check tries again'));
  }, o.intervalMs ?? 60_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
