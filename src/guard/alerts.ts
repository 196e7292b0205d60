// Alerts when a breaker trips or the quota nears its stop: a log line (event "breaker") and a
// JSON POST to the configured webhook at once, and a mail to the postmaster through an outbox in
// the store that a dispatcher (started by the server, which owns the spool) drains. Both tell the
// operator where the held mail is and the exact commands to look at, release or delete it.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../observe/log.ts';
import { mailEvent } from '../observe/maillog.ts';
import type { Store } from '../store/store.ts';

export interface GuardAlert {
  /**
   * open: a breaker tripped; warning: the quota passed its warning mark (or would, at the current
   * rate: kind quota-projection / budget-projection), or a source reached an early-warning mark
   * (warnings.ts); held: the queued mail of a tripped breaker's source was put on hold
   * (figures.held says how many); digest: the daily outbound volume per login; notice: another part
   * of the server needs the operator (a certificate that cannot be renewed, account hygiene),
   * `reason` says what; alarm: a finding that needs the operator now, not about one source (the
   * relay self-probe found an open relay, the queue grows too fast); recovered: the finding of an
   * earlier alarm is over (the queue-growth episode ended).
   */
  readonly state: 'open' | 'warning' | 'held' | 'digest' | 'notice' | 'alarm' | 'recovered';
  /** The breaker ("global", "aggregate", "login:alice@example.org"), "quota", "digest", or what raised it. */
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
 * Which queued messages a breaker stands for: a login's by the login that submitted them (the
 * catalog keeps it; a login may send as several addresses, sender-login sendAs), a sender's by
 * the envelope sender. A client's, the aggregate's or the global breaker's mail is named by none
 * of these (held when its delivery comes up).
 */
export function holdSelection(name: string): { readonly login: string } | { readonly sender: string } | undefined {
  const m = /^(login|sender):(.+)$/.exec(name);
  if (!m) return undefined;
  return m[1] === 'login' ? { login: m[2]! } : m[2]!.includes('@') ? { sender: m[2]! } : undefined;
}

/** The queue command options that select a breaker's mail ("--login alice@example.org"). */
const selectionOptions = (name: string): string | undefined => {
  const sel = holdSelection(name);
  return sel === undefined ? undefined : 'login' in sel ? `--login ${sel.login}` : `--sender ${sel.sender}`;
};

/**
 * The commands for a breaker's held mail. For a login or a sender the delete names it, so the
 * attack's mail goes and other held mail stays.
 */
export function heldMailCommands(name: string): HeldMailCommands {
  const opts = selectionOptions(name);
  return {
    list: 'mailward queue list --state held',
    release: 'mailward queue release ID...',
    delete: opts ? `mailward queue delete --state held ${opts}` : 'mailward queue delete --state held',
  };
}

/** How an open breaker treats outbound mail, in one sentence. */
function holdSentence(name: string): string {
  if (name === 'global') return 'All outbound mail is held in the queue: relayed mail is still accepted, and each queued message is put on hold (the hold area) when its delivery comes up; local delivery carries on.';
  if (name === 'aggregate') return 'Outbound mail of every non-exempt source is stopped: new relayed mail is refused with a 4xx, and queued outbound mail is put on hold (the hold area) when its delivery comes up; local delivery and exempt sources carry on.';
  return holdSelection(name)
    ? `New outbound mail from ${name} is refused with a 4xx, and its queued outbound mail is put on hold (the hold area) at once; local delivery carries on.`
    : `New outbound mail from ${name} is refused with a 4xx, and its queued outbound mail is put on hold (the hold area) when its delivery comes up; local delivery carries on.`;
}

export function alertSubject(a: GuardAlert, hostname: string): string {
  const head = `[mailward ${hostname}]`;
  switch (a.state) {
    case 'warning':
      return a.name === 'quota' ? `${head} outbound quota warning: ${a.reason}` : `${head} outbound early warning: ${a.name}`;
    case 'held':
      return `${head} outbound breaker ${a.name}: ${a.figures.held ?? 0} queued message(s) put on hold`;
    case 'digest':
      return `${head} outbound digest: ${a.reason}`;
    case 'notice':
      return `${head} ${a.kind}: ${a.name}`;
    case 'alarm':
      return `${head} ALARM ${a.name}: ${a.reason}`;
    case 'recovered':
      return `${head} recovered ${a.name}: ${a.reason}`;
    case 'open':
      return `${head} outbound breaker open: ${a.name}`;
  }
}

const FIRST_LINE: Record<GuardAlert['state'], (a: GuardAlert, hostname: string) => string> = {
  warning: (a, h) =>
    a.name !== 'quota'
      ? `Early warning: ${a.name} on ${h} is on its way to a breaker (${a.kind}); nothing is stopped yet.`
      : a.kind.endsWith('-projection')
        ? `At its current rate the outbound mail of ${h} would pass its ${a.kind === 'budget-projection' ? 'budget' : 'quota'}'s warning mark.`
        : `The outbound quota of ${h} passed its warning mark.`,
  open: (a, h) => `The outbound breaker "${a.name}" of ${h} tripped (${a.kind}).`,
  held: (a, h) => `The queued outbound mail of "${a.name}" on ${h} was put on hold at the trip.`,
  digest: (_a, h) => `Outbound volume of ${h} per login.`,
  notice: (a, h) => `${a.kind} on ${h}: ${a.name}.`,
  alarm: (a, h) => `${a.name} on ${h} raised an alarm (${a.kind}).`,
  recovered: (a, h) => `The alarm ${a.name} on ${h} is over (${a.kind}).`,
};

/**
 * The postmaster mail's text; `held`: messages on hold when it was written, when known;
 * `heldAtTrip`: the source's queued messages put on hold at the trip, when known.
 */
export function alertText(a: GuardAlert, hostname: string, held?: number, heldAtTrip?: number): string {
  const lines = [
    FIRST_LINE[a.state](a, hostname),
    '',
    `Why: ${a.reason}`,
    `When: ${new Date(a.at).toISOString()}`,
    ...Object.entries(a.figures).map(([k, v]) => `${k}: ${v}`),
    '',
  ];
  if (a.state === 'open') {
    const c = heldMailCommands(a.name);
    lines.push(holdSentence(a.name));
    if (heldAtTrip !== undefined) lines.push(`${heldAtTrip} queued message(s) of ${a.name} were put on hold at the trip.`);
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
    // The digest is no decision on mail: a plain log line, not a breaker event. A notice's sender
    // logs its own line.
    if (a.state === 'digest') this.o.log.info({ event: 'guard-digest', reason: a.reason, logins: a.figures }, `outbound digest: ${a.reason}`);
    else if (a.state !== 'notice') mailEvent(this.o.log, 'breaker', { state: a.state, breaker: a.name, kind: a.kind, reason: a.reason, ...a.figures });
    if (this.o.webhook) {
      const p = this.#post(this.o.webhook, a).finally(() => this.#pending.delete(p));
      this.#pending.add(p);
    }
    // A hold is told in the trip's own mail (its count is added when the mail is written).
    if (this.o.mail && a.state !== 'held') {
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
const WEBHOOK_TYPE = (a: GuardAlert): string => ({ open: 'breaker-open', held: 'breaker-held', digest: 'digest', notice: a.kind, alarm: 'alarm', recovered: 'recovered', warning: a.name === 'quota' ? 'quota-warning' : 'early-warning' })[a.state];

export function webhookPayload(a: GuardAlert, hostname: string): Record<string, unknown> {
  return {
    type: WEBHOOK_TYPE(a),
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
  /** The source's queued messages put on hold at the trip (the server's breaker watch), for an open alert's text. */
  heldAtTrip?: (a: GuardAlert) => Promise<number | undefined>;
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
            // The trip's hold first: "on hold now" then counts what it held.
            const atTrip = item.alert.state === 'open' && o.heldAtTrip ? await o.heldAtTrip(item.alert).catch(() => undefined) : undefined;
            const held = item.alert.state === 'open' && o.held ? await o.held().catch(() => undefined) : undefined;
            await o.mailer.send(alertSubject(item.alert, o.hostname), alertText(item.alert, o.hostname, held, atTrip));
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
