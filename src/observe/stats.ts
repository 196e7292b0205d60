// What the dashboard shows, built from the mail events: per-hour counts (accepted, relayed,
// rejected by check, delivered, bounced) over 7 days, top senders by login and by client address
// with their hourly relayed counts, recent relayed messages with what allowed each to leave, and
// recent decisions. Bounded in memory; hourly counts are flushed to the store so a restart keeps
// the charts (docs/decisions/0010-operator-experience.md).
import type { Logger } from './log.ts';
import { isStoreUnavailable, type Store } from '../store/store.ts';
import { mailEvents, type MailEventBus, type PublishedEvent } from './events.ts';
import { DECISIONS, relayKinds } from './metrics.ts';

const HOUR = 3_600_000;
/** 7 days of hours, plus the current one. */
export const KEEP_HOURS = 7 * 24 + 1;
const COUNTS = ['accepted', 'relayed', 'rejected', 'deferred', 'discarded', 'quarantined', 'delivered', 'bounced'] as const;
export type CountName = (typeof COUNTS)[number];
/** Distinct logins or client addresses kept per hour; the rest are summed under OTHER. */
const MAX_SOURCES_PER_HOUR = 500;
export const OTHER = '(other)';

export interface HourCounts {
  /** Start of the hour (ms since the epoch). */
  readonly hour: number;
  /** Messages accepted (queued), inbound and relayed. */
  readonly accepted: number;
  /** Of those, messages for other domains (relayed). */
  readonly relayed: number;
  /** Refusals (5xx) by the check that refused: "relay", "dnsbl", "recipient", "syntax" … */
  readonly rejected: number;
  readonly rejectedBy: Readonly<Record<string, number>>;
  /** Temporary refusals (4xx) to clients. */
  readonly deferred: number;
  readonly discarded: number;
  /** Messages accepted (250) but kept in the spam quarantine, not delivered. */
  readonly quarantined: number;
  /** Recipients delivered and bounced. */
  readonly delivered: number;
  readonly bounced: number;
}

interface SourceCounts {
  messages: number;
  relayed: number;
  rejected: number;
}

// Store field names of a source's counts: "m|alice@example.org" and so on.
const FIELD_CODE: Record<keyof SourceCounts, string> = { messages: 'm', relayed: 'r', rejected: 'x' };
const CODE_FIELD: Readonly<Record<string, keyof SourceCounts | undefined>> = { m: 'messages', r: 'relayed', x: 'rejected' };

interface Bucket {
  counts: Record<CountName, number>;
  rejectedBy: Map<string, number>;
  logins: Map<string, SourceCounts>;
  clients: Map<string, SourceCounts>;
}

export interface TopSender {
  /** The login or client address (or "(other)"). */
  readonly key: string;
  readonly messages: number;
  readonly relayed: number;
  readonly rejected: number;
  /** Share of all relayed messages in the window, with or without a login (0..1). */
  readonly relayedShare: number;
  /** Relayed messages per hour, oldest first, one per hour of the window. */
  readonly relayedPerHour: readonly number[];
}

export interface RelayedMessage {
  readonly at: number;
  readonly queueId: string;
  readonly from: string;
  readonly to: readonly string[];
  readonly login?: string;
  readonly client?: string;
  readonly proxy?: string;
  readonly listener?: string;
  /** As logged, e.g. "login:alice@example.org" or "trusted-network:10.0.0.0/24". */
  readonly relay: string;
  readonly via: readonly string[];
}

export interface Decision {
  readonly at: number;
  readonly event: string;
  readonly [field: string]: unknown;
}

export interface TunnelNote {
  readonly address: string;
  readonly since: number;
  readonly until: number;
  readonly heloNames: number;
  readonly senderDomains: number;
  readonly examples?: { readonly helo: readonly string[]; readonly senderDomains: readonly string[] };
}

export interface StatsOptions {
  readonly clock?: () => number;
  /** Where hourly counts are kept across restarts; none: memory only. */
  readonly store?: Store;
  /** Key part that keeps several nodes sharing one Redis apart (default "local"). */
  readonly node?: string;
  readonly log?: Logger;
  /** Recent relayed messages and decisions kept (default 200 and 500). */
  readonly recentRelayed?: number;
  readonly recentDecisions?: number;
}

// Fields of a decision worth showing; anything else in the event stays in the log.
const DECISION_FIELDS = ['session', 'queueId', 'client', 'proxy', 'listener', 'login', 'helo', 'from', 'to', 'rcpt', 'stage', 'check', 'reason', 'reply', 'relay', 'transport', 'result', 'name', 'breaker', 'state'] as const;
// The SMTP decisions metrics count, plus what happened to mail afterwards.
const DECISION_EVENTS = new Set([...DECISIONS, 'delivered', 'bounced', 'breaker']);

const emptyBucket = (): Bucket => ({ counts: Object.fromEntries(COUNTS.map((c) => [c, 0])) as Record<CountName, number>, rejectedBy: new Map(), logins: new Map(), clients: new Map() });
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const list = (v: unknown): string[] => (typeof v === 'string' ? [v] : Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

class Ring<T> {
  #items: T[] = [];
  constructor(readonly size: number) {}
  push(x: T): void {
    this.#items.push(x);
    if (this.#items.length > this.size) this.#items.splice(0, this.#items.length - this.size);
  }
  /** Newest first. */
  latest(n: number): T[] {
    return this.#items.slice(-Math.max(0, n)).reverse();
  }
}

export class MailStats {
  readonly #clock: () => number;
  readonly #store: Store | undefined;
  readonly #prefix: string;
  readonly #log: Logger | undefined;
  /** The saved counts could not be read at start-up; read them before the first write. */
  #unloaded = false;
  readonly #buckets = new Map<number, Bucket>();
  readonly #relayed: Ring<RelayedMessage>;
  readonly #decisions: Ring<Decision>;
  readonly #tunnels = new Map<string, TunnelNote>();
  // Store deltas not yet written: key → field → amount.
  #pending = new Map<string, Map<string, number>>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(opts: StatsOptions = {}) {
    this.#clock = opts.clock ?? Date.now;
    this.#store = opts.store;
    this.#prefix = `stats:${opts.node ?? 'local'}:`;
    this.#log = opts.log;
    this.#relayed = new Ring(opts.recentRelayed ?? 200);
    this.#decisions = new Ring(opts.recentDecisions ?? 500);
  }

  /** Subscribes to the mail events; returns the unsubscribe function. */
  attach(bus: MailEventBus = mailEvents): () => void {
    return bus.subscribe((e) => this.ingest(e));
  }

  ingest(e: PublishedEvent): void {
    const f = e.fields;
    const hour = Math.floor(e.at / HOUR);
    const count = (name: CountName, by = 1): void => this.#add(hour, name, by);
    const source = (what: keyof SourceCounts): void => {
      const login = str(f.login);
      const client = str(f.client);
      if (login) this.#addSource(hour, 'logins', login, what);
      if (client) this.#addSource(hour, 'clients', client, what);
    };
    switch (e.event) {
      case 'queued': {
        count('accepted');
        source('messages');
        const relay = str(f.relay);
        if (relay) {
          count('relayed');
          source('relayed');
          this.#relayed.push({
            at: e.at,
            queueId: str(f.queueId) ?? '',
            from: typeof f.from === 'string' ? f.from : '',
            to: list(f.to),
            relay,
            via: relayKinds(relay),
            ...(str(f.login) ? { login: str(f.login) } : {}),
            ...(str(f.client) ? { client: str(f.client) } : {}),
            ...(str(f.proxy) ? { proxy: str(f.proxy) } : {}),
            ...(str(f.listener) ? { listener: str(f.listener) } : {}),
          });
        }
        break;
      }
      case 'rejected': {
        count('rejected');
        source('rejected');
        this.#addRejected(hour, str(f.check) ?? 'syntax');
        break;
      }
      case 'deferred':
        // With a stage it is a 4xx to a client; without, a delivery that will be retried.
        if (f.stage !== undefined) count('deferred');
        break;
      case 'discarded':
        count('discarded');
        break;
      case 'quarantined':
        count('quarantined');
        source('messages');
        break;
      case 'delivered':
        count('delivered', Math.max(1, list(f.to ?? f.rcpt).length));
        break;
      case 'bounced':
        count('bounced', Math.max(1, list(f.to ?? f.rcpt).length));
        break;
      default:
        break;
    }
    if (DECISION_EVENTS.has(e.event) || (e.event === 'auth' && f.result !== 'success')) {
      const d: Record<string, unknown> = { at: e.at, event: e.event };
      for (const k of DECISION_FIELDS) if (f[k] !== undefined) d[k] = f[k];
      this.#decisions.push(d as Decision);
    }
  }

  /** A client address found to carry many clients (from the TunnelDetector). */
  noteTunnel(t: TunnelNote): void {
    this.#tunnels.set(t.address, t);
    if (this.#tunnels.size > 100) {
      const first = this.#tunnels.keys().next().value;
      if (first !== undefined) this.#tunnels.delete(first);
    }
  }

  tunnels(): TunnelNote[] {
    const now = this.#clock();
    return [...this.#tunnels.values()].filter((t) => t.until > now);
  }

  /** Counts for each of the last `hours` hours, oldest first, the current hour last. */
  hourly(hours: number): HourCounts[] {
    const n = Math.max(1, Math.min(KEEP_HOURS, Math.floor(hours)));
    const current = Math.floor(this.#clock() / HOUR);
    const out: HourCounts[] = [];
    for (let h = current - n + 1; h <= current; h++) {
      const b = this.#buckets.get(h);
      out.push({ hour: h * HOUR, ...(b ? b.counts : emptyBucket().counts), rejectedBy: b ? Object.fromEntries(b.rejectedBy) : {} });
    }
    return out;
  }

  /** Sums over the last `hours` hours. */
  totals(hours: number): Omit<HourCounts, 'hour'> {
    const sum: Record<CountName, number> = { ...emptyBucket().counts };
    const by: Record<string, number> = {};
    for (const h of this.hourly(hours)) {
      for (const c of COUNTS) sum[c] += h[c];
      for (const [k, v] of Object.entries(h.rejectedBy)) by[k] = (by[k] ?? 0) + v;
    }
    return { ...sum, rejectedBy: by };
  }

  /** The senders that relayed (then sent) most in the last `hours` hours, by login and by client address. */
  top(hours = 24, limit = 10): { logins: TopSender[]; clients: TopSender[] } {
    return { logins: this.#top('logins', hours, limit), clients: this.#top('clients', hours, limit) };
  }

  #top(dim: 'logins' | 'clients', hours: number, limit: number): TopSender[] {
    const n = Math.max(1, Math.min(KEEP_HOURS, Math.floor(hours)));
    const current = Math.floor(this.#clock() / HOUR);
    const sums = new Map<string, SourceCounts & { perHour: number[] }>();
    // A share of all relayed mail, with or without a login: the question is "who sends it all?".
    let relayedAll = 0;
    for (let i = 0; i < n; i++) {
      const b = this.#buckets.get(current - n + 1 + i);
      if (!b) continue;
      relayedAll += b.counts.relayed;
      for (const [key, c] of b[dim]) {
        let s = sums.get(key);
        if (!s) sums.set(key, (s = { messages: 0, relayed: 0, rejected: 0, perHour: new Array<number>(n).fill(0) }));
        s.messages += c.messages;
        s.relayed += c.relayed;
        s.rejected += c.rejected;
        s.perHour[i] = c.relayed;
      }
    }
    return [...sums.entries()]
      .sort((a, b) => b[1].relayed - a[1].relayed || b[1].messages - a[1].messages || b[1].rejected - a[1].rejected || a[0].localeCompare(b[0]))
      .slice(0, Math.max(0, limit))
      .map(([key, s]) => ({ key, messages: s.messages, relayed: s.relayed, rejected: s.rejected, relayedShare: relayedAll === 0 ? 0 : s.relayed / relayedAll, relayedPerHour: s.perHour }));
  }

  /** Recent relayed messages, newest first. */
  relayed(limit = 50): RelayedMessage[] {
    return this.#relayed.latest(limit);
  }

  /** Recent decisions (refusals, acceptances, deliveries, bounces, breaker changes), newest first. */
  decisions(limit = 50): Decision[] {
    return this.#decisions.latest(limit);
  }

  // ---- counting -------------------------------------------------------------------------

  #bucket(hour: number): Bucket | undefined {
    const current = Math.floor(this.#clock() / HOUR);
    if (hour <= current - KEEP_HOURS) return undefined;
    let b = this.#buckets.get(hour);
    if (!b) {
      this.#buckets.set(hour, (b = emptyBucket()));
      for (const h of this.#buckets.keys()) if (h <= current - KEEP_HOURS) this.#buckets.delete(h);
    }
    return b;
  }

  #add(hour: number, name: CountName, by: number): void {
    const b = this.#bucket(hour);
    if (!b) return;
    b.counts[name] += by;
    this.#delta(`h:${hour}`, name, by);
  }

  #addRejected(hour: number, check: string): void {
    const b = this.#bucket(hour);
    if (!b) return;
    b.rejectedBy.set(check, (b.rejectedBy.get(check) ?? 0) + 1);
    this.#delta(`h:${hour}`, `rej:${check}`, 1);
  }

  #addSource(hour: number, dim: 'logins' | 'clients', key: string, what: keyof SourceCounts, by = 1): void {
    const b = this.#bucket(hour);
    if (!b) return;
    const m = b[dim];
    const k = m.has(key) || m.size < MAX_SOURCES_PER_HOUR ? key : OTHER;
    let c = m.get(k);
    if (!c) m.set(k, (c = { messages: 0, relayed: 0, rejected: 0 }));
    c[what] += by;
    this.#delta(`${dim === 'logins' ? 'l' : 'c'}:${hour}`, `${FIELD_CODE[what]}|${k}`, by);
  }

  // ---- persistence ----------------------------------------------------------------------

  #delta(key: string, field: string, by: number): void {
    if (!this.#store) return;
    let m = this.#pending.get(key);
    if (!m) this.#pending.set(key, (m = new Map<string, number>()));
    m.set(field, (m.get(field) ?? 0) + by);
  }

  /** Reads the last 7 days of hourly counts from the store (call once, before events arrive). */
  /**
   * Adds the counts saved by earlier runs. A store that is down at start-up (Redis after a power
   * cut comes up after the mail server) must not stop the server: the load is retried before each
   * flush, and no delta is written before it succeeds, so nothing is counted twice.
   */
  async load(): Promise<void> {
    try {
      await this.#load();
      this.#unloaded = false;
    } catch (err) {
      if (!isStoreUnavailable(err)) throw err;
      if (this.#unloaded) return;
      this.#unloaded = true;
      this.#log?.warn({ event: 'stats-load-deferred', err: err.message }, 'dashboard statistics not loaded: the store is unavailable; retrying with the next save');
    }
  }

  async #load(): Promise<void> {
    const store = this.#store;
    if (!store) return;
    const current = Math.floor(this.#clock() / HOUR);
    const hours = Array.from({ length: KEEP_HOURS }, (_, i) => current - KEEP_HOURS + 1 + i);
    await Promise.all(
      hours.map(async (hour) => {
        const [counts, logins, clients] = await Promise.all([store.hgetall(`${this.#prefix}h:${hour}`), store.hgetall(`${this.#prefix}l:${hour}`), store.hgetall(`${this.#prefix}c:${hour}`)]);
        if (counts.size + logins.size + clients.size === 0) return;
        const b = this.#bucket(hour);
        if (!b) return;
        for (const [field, v] of counts) {
          if (field.startsWith('rej:')) b.rejectedBy.set(field.slice(4), (b.rejectedBy.get(field.slice(4)) ?? 0) + v);
          else if ((COUNTS as readonly string[]).includes(field)) b.counts[field as CountName] += v;
        }
        for (const [dim, m] of [['logins', logins], ['clients', clients]] as const) {
          for (const [field, v] of m) {
            const bar = field.indexOf('|');
            const what = CODE_FIELD[field.slice(0, bar)];
            if (bar < 1 || !what) continue;
            const key = field.slice(bar + 1);
            let c = b[dim].get(key);
            if (!c) b[dim].set(key, (c = { messages: 0, relayed: 0, rejected: 0 }));
            c[what] += v;
          }
        }
      }),
    );
  }

  /** Writes the counts gathered since the last flush; on failure they are kept for the next one. */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    const store = this.#store;
    if (!store) return;
    if (this.#unloaded) {
      await this.load();
      if (this.#unloaded) return;
    }
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    const ttl = (KEEP_HOURS + 24) * HOUR;
    for (const [key, fields] of batch) {
      try {
        await store.hincrMany(`${this.#prefix}${key}`, [...fields.entries()], ttl);
      } catch (err) {
        // Keep the deltas: the next flush tries again (the store may be briefly unavailable).
        for (const [field, by] of fields) this.#delta(key, field, by);
        this.#log?.warn({ event: 'stats-flush-failed', err: String(err) }, 'could not save dashboard statistics; will retry');
      }
    }
  }

  /** Flushes every `intervalMs` (default 10 s) until `close()`. */
  startPersisting(intervalMs = 10_000): void {
    if (!this.#store || this.#timer) return;
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
