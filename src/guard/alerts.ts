// Alerts when a breaker trips or the quota nears its stop: a log line (event "breaker") and a
// JSON POST to the configured webhook at once, and a mail to the postmaster through an outbox in
// the store that a dispatcher (started by the server, which owns the spool) drains. Both tell the
// operator where the held mail is and the exact commands to look at, release or delete it.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../observe/log.ts';
import { mailEvent } from '../observe/maillog.ts';
import type { Store } from '../store/store.ts';

export interface GuardAlert {
  /** open: a breaker tripped; warning: the quota passed its warning mark; alarm: a finding that
   *  needs the operator now, not about one source (e.g. the relay self-probe found an open relay). */
  readonly state: 'open' | 'warning' | 'alarm';
  /** The breaker ("global", "login:alice@example.org") or "quota". */
  readonly name: string;
  readonly kind: string;
  readonly reason: string;
  readonly figures: Readonly<Record<string, number | string>>;
  /** Milliseconds since the epoch. */
  readonly at: number;
}

/** How a postmaster mail leaves: implemented by the server over its spool (see spoolAlertMailer). */
export interface AlertMailer {
  send(subject: string, text: string): Promise<void>;
}

export interface AlerterOptions {
  readonly log: Logger;
  readonly store: Store;
  readonly clock: () => number;
  readonly hostname: string;
  readonly webhook?: { readonly url: string; readonly timeoutMs: number };
  /** Queue a postmaster mail for each alert. */
  readonly mail: boolean;
}

const DAY = 86_400_000;
const OUTBOX = 'guard:outbox:';
// Webhook attempts: at once, then after 1 s and 5 s. A receiver down for longer has the log and the mail.
const RETRY_DELAYS = [1000, 5000];

/** The operator's command that reopens a breaker. */
export const releaseCommand = (name: string): string => `mailward guard release ${name}`;

/** The queue commands for mail the guard put on hold (in the spool's hold/ area). */
export interface HeldMailCommands {
  readonly list: string;
  readonly release: string;
  readonly delete: string;
}

/**
 * The commands for a breaker's held mail. For a sender (or a login that is an address) the
 * delete names it, so the attack's mail goes and other held mail stays.
 */
export function heldMailCommands(name: string): HeldMailCommands {
  const colon = name.indexOf(':');
  const kind = name.slice(0, colon);
  const id = name.slice(colon + 1);
  const sender = (kind === 'sender' || kind === 'login') && id.includes('@') ? id : undefined;
  return {
    list: 'mailward queue list --state held',
    release: 'mailward queue release ID...',
    delete: sender ? `mailward queue delete --state held --sender ${sender}` : 'mailward queue delete --state held',
  };
}

/** How an open breaker treats outbound mail, in one sentence. */
function holdSentence(name: string): string {
  return name === 'global'
    ? 'All outbound mail is held in the queue: relayed mail is still accepted, and each queued message is put on hold (the hold area) when its delivery comes up; local delivery carries on.'
    : `New outbound mail from ${name} is refused with a 4xx and its queued outbound mail is put on hold (the hold area) when its delivery comes up; local delivery carries on.`;
}

export function alertSubject(a: GuardAlert, hostname: string): string {
  if (a.state === 'alarm') return `[mailward ${hostname}] ALARM ${a.name}: ${a.reason}`;
  return a.state === 'warning' ? `[mailward ${hostname}] outbound quota warning: ${a.reason}` : `[mailward ${hostname}] outbound breaker open: ${a.name}`;
}

/** The postmaster mail's text; `held`: messages on hold when it was written, when known. */
export function alertText(a: GuardAlert, hostname: string, held?: number): string {
  const lines = [
    a.state === 'alarm'
      ? `${a.name} on ${hostname} raised an alarm (${a.kind}).`
      : a.state === 'warning'
        ? a.kind.endsWith('-projection')
          ? `At its current rate the outbound mail of ${hostname} would pass its ${a.kind === 'budget-projection' ? 'budget' : 'quota'}'s warning mark.`
          : `The outbound quota of ${hostname} passed its warning mark.`
        : `The outbound breaker "${a.name}" of ${hostname} tripped (${a.kind}).`,
    '',
    `Why: ${a.reason}`,
    `When: ${new Date(a.at).toISOString()}`,
    ...Object.entries(a.figures).map(([k, v]) => `${k}: ${v}`),
    '',
  ];
  if (a.state === 'open') {
    const c = heldMailCommands(a.name);
    lines.push(holdSentence(a.name));
    if (held !== undefined) lines.push(`${held} message(s) are on hold now.`);
    lines.push(
      '',
      'See what happened:   mailward guard status',
      `See the held mail:   ${c.list}`,
      `Reopen when safe:    ${releaseCommand(a.name)}`,
      '  New mail then flows again; the mail held meanwhile stays on hold (it is probably the attack\'s).',
      `Send held mail:      ${c.release}   (or --sender ADDRESS, or --all)`,
      `Delete held mail:    ${c.delete}   (or ID...)`,
    );
  }
  return lines.join('\n');
}

export class Alerter {
  readonly #pending = new Set<Promise<void>>();

  constructor(private readonly o: AlerterOptions) {}

  /** Logs at once, starts the webhook POST, and queues the postmaster mail. Never rejects. */
  async raise(a: GuardAlert): Promise<void> {
    mailEvent(this.o.log, 'breaker', { state: a.state, breaker: a.name, kind: a.kind, reason: a.reason, ...a.figures });
    if (this.o.webhook) {
      const p = this.#post(this.o.webhook, a).finally(() => this.#pending.delete(p));
      this.#pending.add(p);
    }
    if (this.o.mail) {
      try {
        await enqueueAlertMail(this.o.store, a, this.o.clock());
      } catch (err) {
        this.o.log.error({ event: 'alert-failed', channel: 'postmaster', breaker: a.name, err: String(err) }, 'could not queue the postmaster alert');
      }
    }
  }

  /** Waits for webhook posts under way (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  async #post(hook: { url: string; timeoutMs: number }, a: GuardAlert): Promise<void> {
    const body = JSON.stringify(webhookPayload(a, this.o.hostname));
    let last = '';
    for (let attempt = 0; attempt <= RETRY_DELAYS.length; attempt++) {
      if (attempt > 0) await new Promise<void>((r) => setTimeout(r, RETRY_DELAYS[attempt - 1]).unref());
      try {
        const res = await fetch(hook.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'Mailward outbound guard' },
          body,
          signal: AbortSignal.timeout(hook.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        last = `HTTP ${res.status}`;
        // A 4xx other than 429 will not change on retry.
        if (res.status < 500 && res.status !== 429) break;
      } catch (err) {
        last = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      }
    }
    // The URL may carry a token in its path or query: log the origin only.
    this.o.log.error({ event: 'alert-failed', channel: 'webhook', webhook: new URL(hook.url).origin, breaker: a.name, err: last }, 'the alert webhook did not accept the alert');
  }
}

/** The webhook's JSON: the alert's fields, plus `text` so Slack/Mattermost-style receivers show it. */
export function webhookPayload(a: GuardAlert, hostname: string): Record<string, unknown> {
  return {
    type: a.state === 'open' ? 'breaker-open' : a.state === 'alarm' ? 'alarm' : 'quota-warning',
    server: hostname,
    breaker: a.name,
    kind: a.kind,
    reason: a.reason,
    figures: a.figures,
    at: new Date(a.at).toISOString(),
    ...(a.state === 'open' ? { release: releaseCommand(a.name), heldMail: heldMailCommands(a.name) } : {}),
    text: a.state === 'open' ? `${alertSubject(a, hostname)} — ${a.reason}. ${holdSentence(a.name)} Held mail: ${heldMailCommands(a.name).list}` : `${alertSubject(a, hostname)} — ${a.reason}`,
  };
}

// The outbox: one set per day of the guard's clock, members are the alerts as JSON with an id.

export async function enqueueAlertMail(store: Store, a: GuardAlert, now: number): Promise<void> {
  await store.sadd(`${OUTBOX}${Math.floor(now / DAY)}`, [JSON.stringify({ id: randomUUID(), alert: a })], 3 * DAY);
}

export interface AlertDispatcher {
  /** Sends what is waiting; resolves how many mails were sent. */
  tick(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Sends the postmaster mails waiting in the outbox every `intervalMs`. Each mail is claimed with
 * an atomic set-if-absent first, so with several nodes each alert is mailed once.
 */
export function startAlertDispatcher(o: {
  store: Store;
  mailer: AlertMailer;
  log: Logger;
  hostname: string;
  clock?: () => number;
  intervalMs?: number;
  /** Messages on hold now (the server's queue catalog), for the mail's text; left out when it fails. */
  held?: () => Promise<number>;
}): AlertDispatcher {
  const clock = o.clock ?? Date.now;
  const done = new Set<string>();
  let running: Promise<number> | undefined;
  const tick = (): Promise<number> => {
    running ??= (async () => {
      let sent = 0;
      const day = Math.floor(clock() / DAY);
      for (const d of [day - 1, day]) {
        let members: string[];
        try {
          members = await o.store.smembers(`${OUTBOX}${d}`);
        } catch {
          return sent; // the store is away; the next tick tries again
        }
        for (const m of members) {
          let item: { id: string; alert: GuardAlert };
          try {
            item = JSON.parse(m) as { id: string; alert: GuardAlert };
          } catch {
            continue;
          }
          if (done.has(item.id)) continue;
          const claim = `${OUTBOX}sent:${item.id}`;
          if (!(await o.store.setIfAbsent(claim, String(clock()), 3 * DAY).catch(() => false))) {
            done.add(item.id);
            continue;
          }
          try {
            const held = item.alert.state === 'open' && o.held ? await o.held().catch(() => undefined) : undefined;
            await o.mailer.send(alertSubject(item.alert, o.hostname), alertText(item.alert, o.hostname, held));
            done.add(item.id);
            sent++;
          } catch (err) {
            // Give the claim back so a later tick (or another node) sends it.
            await o.store.del(claim).catch(() => undefined);
            o.log.error({ event: 'alert-failed', channel: 'postmaster', breaker: item.alert.name, err: String(err) }, 'could not queue the postmaster alert mail; will retry');
          }
        }
      }
      return sent;
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void tick(), o.intervalMs ?? 1000);
  timer.unref();
  return {
    tick,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
