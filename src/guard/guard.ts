// The outbound guard: judges each relayed recipient against the breakers (baseline, distinct
// domains, trusted-network burst), counts bounces coming back, keeps the global quota for the
// transport, and releases breakers. All state is in the store; one object per user of it.
import type { GuardSettings } from '../config/guard-schema.ts';
import { temp, type SmtpReply } from '../core/reply.ts';
import type { Logger } from '../observe/log.ts';
import { mailEvent } from '../observe/maillog.ts';
import type { Store } from '../store/store.ts';
import { AGGREGATE, Aggregate, AGGREGATE_COUNTS, type AggregateFigures, type Measurement } from './aggregate.ts';
import { Alerter } from './alerts.ts';
import { Baselines, HOUR, type BaselineReading } from './baseline.ts';
import { Breakers, type BreakerKind, type BreakerState } from './breaker.ts';
import { GLOBAL, source, sourcesOf, type SenderFacts, type SourceKind } from './sources.ts';
import { EarlyWarnings, type EarlyWarning } from './warnings.ts';
import { readQueueGrowth, type GrowthStatus } from './queue-growth.ts';
import { SlidingCounter } from './window.ts';

export interface OutboundGuardDeps {
  readonly store: Store;
  readonly clock: () => number;
  readonly log: Logger;
  readonly hostname: string;
  readonly settings: GuardSettings;
  /** Default: one built from settings.alerts (webhook, postmaster outbox). */
  readonly alerter?: Alerter;
}

export type GuardDecision = { readonly ok: true } | { readonly ok: false; readonly reply: SmtpReply; readonly reason: string; readonly breaker: BreakerState };

export type Admission =
  | { readonly ok: true; readonly reserved: number }
  /** `breaker`: the open breaker that refused, or "global" for the quota's hard stop. */
  | { readonly ok: false; readonly reply: SmtpReply; readonly reason: string; readonly breaker: string };

export interface SourceFigures {
  readonly source: string;
  readonly reading: BaselineReading;
  /** Distinct recipient domains this clock hour. */
  readonly domains: number;
}

export interface GuardStatus {
  readonly at: number;
  readonly breakers: readonly BreakerState[];
  readonly quota?: { readonly used: number; readonly limit: number; readonly warn: number; readonly stop: number; readonly windowMs: number };
  /** Sources that relayed this hour or the last, busiest first. */
  readonly sources: readonly SourceFigures[];
  readonly trusted: ReadonlyArray<{ readonly subject: string; readonly count: number }>;
  readonly bounces: ReadonlyArray<{ readonly subject: string; readonly count: number }>;
  /** The installation-wide figures (absent when the aggregate breaker is off). */
  readonly aggregate?: AggregateFigures;
  /** Early warnings of this hour and the last, newest first. */
  readonly warnings: readonly EarlyWarning[];
  /** The queue-growth alarm's last sample, as the server stored it (absent: no server sampled). */
  readonly queueGrowth?: GrowthStatus;
}

/**
 * The reply while a breaker refuses: short, and naming the source suspended (the client learns
 * which of its identities, never why; the log has the reason). RFC 3463 4.7.1: delivery not
 * authorized; RFC 5321 §4.2.2 451: try again later.
 */
export function suspendedReply(name: string): SmtpReply {
  if (name === AGGREGATE || name === GLOBAL) return temp('4.7.1', 'outbound sending suspended on this server (outbound guard)', 451);
  const colon = name.indexOf(':');
  return temp('4.7.1', `sending suspended for ${name.slice(0, colon)} ${name.slice(colon + 1)} (outbound guard)`, 451);
}
const QUOTA_TRIPPED = 'guard:quota:tripped';
const QUOTA_WARNED = 'guard:quota:warned';
const QUOTA_PROJECTED = 'guard:quota:projected';
const BUDGET_PROJECTED = 'guard:quota:budget';
const HOUR_MS = 3_600_000;
const ALL_BOUNCES = '*';

const fmt = (n: number): string => String(Math.round(n * 10) / 10);

export class OutboundGuard {
  readonly breakers: Breakers;
  readonly baselines: Baselines;
  readonly alerter: Alerter;
  readonly settings: GuardSettings;
  readonly #store: Store;
  readonly #clock: () => number;
  readonly #log: Logger;
  readonly #hostname: string;
  readonly #trusted: SlidingCounter;
  readonly #bounces: SlidingCounter;
  readonly #quota: SlidingCounter;
  /** The quota's last hour: the current rate, projected over the window. */
  readonly #lastHour: SlidingCounter;
  readonly #exempt: Set<string>;
  readonly aggregate: Aggregate;
  readonly warnings: EarlyWarnings;
  /** The tail of the quota's admissions, run one at a time (see admitDelivery). */
  #quotaTurn: Promise<unknown> = Promise.resolve();

  constructor(d: OutboundGuardDeps) {
    const s = d.settings;
    this.settings = s;
    this.#store = d.store;
    this.#clock = d.clock;
    this.#log = d.log;
    this.#hostname = d.hostname;
    this.breakers = new Breakers(d.store, d.clock);
    this.baselines = new Baselines(d.store, { factor: s.baseline.factor, minimum: s.baseline.minimum, halfLifeMs: s.baseline.halfLife });
    this.#trusted = new SlidingCounter(d.store, 'guard:t', s.trustedNetwork.window);
    this.#bounces = new SlidingCounter(d.store, 'guard:b', s.bounces.window);
    this.#quota = new SlidingCounter(d.store, 'guard:q', s.quota.window);
    this.#lastHour = new SlidingCounter(d.store, 'guard:qh', HOUR_MS);
    // A client exemption is read as the client's own key ("client:::ffff:10.0.0.5" is "client:10.0.0.5"), the form sources are counted under.
    this.#exempt = new Set(s.exempt.map((e) => (/^client:/i.test(e) ? source('client', e.slice(7)) : e.toLowerCase())));
    this.alerter =
      d.alerter ??
      new Alerter({
        log: d.log,
        store: d.store,
        clock: d.clock,
        hostname: d.hostname,
        mail: s.alerts.postmaster,
        ...(s.alerts.webhook ? { webhook: { url: s.alerts.webhook, timeoutMs: s.alerts.webhookTimeout } } : {}),
      });
    this.aggregate = new Aggregate(d.store, s);
    this.warnings = new EarlyWarnings(d.store, this.alerter, s.earlyWarning);
  }

  /**
   * Whether the mail answers to an exempt source: its login, or without one its sender or
   * client (the sources the breakers judge it by). Exempt mail is not counted in the aggregate
   * and not stopped by it.
   */
  #isExempt(f: SenderFacts): boolean {
    const accountable = f.login ? sourcesOf(f, ['login']) : sourcesOf(f, ['sender', 'client']);
    return accountable.some((x) => this.#exempt.has(x));
  }

  /**
   * The breakers that stop the mail of `f`. With a login: the login's and its sender's, never the
   * client's — other users log in from behind the same address (a NAT, a tunnel, 127.0.0.1).
   */
  #stoppers(f: SenderFacts): string[] {
    const own = f.login ? sourcesOf(f, ['login', 'sender']) : sourcesOf(f);
    return this.settings.aggregate.enabled && !this.#isExempt(f) ? [...own, AGGREGATE] : own;
  }

  /**
   * A recipient in a foreign domain at RCPT: refused while a breaker of one of its sources is
   * open; otherwise counted, and refused if this recipient trips one. The global breaker does not
   * refuse here: that mail is accepted and queued, and delivery puts it on hold (admitDelivery).
   */
  async relayedRecipient(f: SenderFacts & { readonly domain: string }): Promise<GuardDecision> {
    const now = this.#clock();
    const open = await this.breakers.firstOpen(this.#stoppers(f));
    if (open) return this.#refusal(open);
    const s = this.settings;
    // Who answers for the mail: a login when there is one (sender-login keeps its senders its
    // own, and its client address moves with the user); else the sender and the client.
    const accountable = f.login ? (['login'] as const) : (['sender', 'client'] as const);
    const judged = (kinds: readonly SourceKind[]) => sourcesOf(f, kinds.filter((k) => (accountable as readonly SourceKind[]).includes(k))).filter((x) => !this.#exempt.has(x));
    const related = judged(['login', 'sender', 'client']);

    // Relayed without a login: its permission came from relay.trustedNetworks.
    const trustedSource = !f.login && s.trustedNetwork.enabled ? judged(['client'])[0] : undefined;
    const baselineSources = s.baseline.enabled ? judged(s.baseline.sources) : [];
    const domainSources = s.domains.enabled ? related : [];
    const inAggregate = s.aggregate.enabled && !this.#isExempt(f);
    const [trusted, readings, domains, total] = await Promise.all([
      trustedSource ? this.#trusted.addAndSum(trustedSource, 1, now) : Promise.resolve(0),
      Promise.all(baselineSources.map((src) => this.baselines.record(src, 1, now))),
      Promise.all(domainSources.map((src) => this.#addDomain(src, f.domain, now))),
      inAggregate ? this.aggregate.recipient(f.domain, now) : Promise.resolve([]),
    ]);

    // Each figure and its limit; a figure trips when it is above its limit, so a limit of N lets
    // exactly N recipients through (the one that would be N + 1 is refused).
    const measured: Measurement[] = [];
    if (trustedSource) {
      const reason = `${trusted} relayed recipients in ${windowWords(s.trustedNetwork.window)} from a trusted network without a login, limit ${s.trustedNetwork.limit}`;
      measured.push({ name: trustedSource, kind: 'trusted-network', value: trusted, limit: s.trustedNetwork.limit, reason, figures: { count: trusted, limit: s.trustedNetwork.limit, windowMs: s.trustedNetwork.window } });
    }
    baselineSources.forEach((src, i) => {
      const r = readings[i]!;
      const reason = `${fmt(r.rate)} relayed recipients in the last hour, limit ${fmt(r.limit)} (${s.baseline.factor} × baseline ${fmt(r.baseline)}, at least ${s.baseline.minimum})`;
      measured.push({ name: src, kind: 'baseline', value: r.rate, limit: r.limit, baseline: r.baseline, reason, figures: { rate: Number(fmt(r.rate)), baseline: Number(r.baseline.toFixed(2)), limit: Number(fmt(r.limit)) } });
    });
    domainSources.forEach((src, i) => {
      const n = domains[i]!;
      // 0: the domain was not new this hour, the count did not move.
      if (n > 0) measured.push({ name: src, kind: 'domains', value: n, limit: s.domains.limit, reason: `${n} distinct recipient domains this hour, limit ${s.domains.limit}`, figures: { domains: n, limit: s.domains.limit } });
    });
    measured.push(...total);

    // One trip per recipient: the first finding decides (a source before the aggregate, so the
    // reply names the source); the others stay as evidence in the store.
    const first = measured.find((m) => m.value > m.limit);
    if (first) {
      // The refused recipient is taken back from the counts of the breakers it did not trip, so
      // it uses up no one else's budget (the aggregate's after a login's trip, and the reverse).
      if (first.name === AGGREGATE) await Promise.all(baselineSources.map((src) => this.baselines.record(src, -1, now)));
      else if (inAggregate) await this.aggregate.takeBack(now);
      return this.#trip(first.name, first.kind, first.reason, { ...first.figures }, now, first.name === AGGREGATE ? [] : related);
    }
    await this.warnings.judge(measured, now);
    return { ok: true };
  }

  /**
   * After a delivery attempt of relayed mail: counts the recipients the next hop answered and,
   * of them, the permanent failures, for the aggregate's failure share; trips it when the share
   * is too high. Our own notices (null sender) and exempt sources are not counted.
   */
  async delivered(env: { readonly mailFrom: string; readonly client: { readonly address: string; readonly login?: string } }, answered: number, failed: number): Promise<void> {
    const f = this.#facts(env);
    if (!this.settings.aggregate.enabled || env.mailFrom === '' || this.#isExempt(f)) return;
    const now = this.#clock();
    const m = await this.aggregate.outcomes(answered, failed, now);
    if (!m) return;
    if (m.value > m.limit) {
      if (!(await this.breakers.get(AGGREGATE))) await this.#trip(AGGREGATE, m.kind, m.reason, { ...m.figures }, now);
      return;
    }
    await this.warnings.judge([m], now);
  }

  #facts(env: { readonly mailFrom: string; readonly client: { readonly address: string; readonly login?: string } }): SenderFacts {
    return { sender: env.mailFrom === '' ? null : env.mailFrom, client: env.client.address, ...(env.client.login ? { login: env.client.login } : {}) };
  }

  /**
   * At DATA, for a message with relayed recipients from a non-exempt source: refused while the
   * aggregate breaker is open (it may have tripped, by another source's recipient, since this
   * message's were taken). A source's own breaker does not refuse here: the recipients it took
   * before its trip are within its budget, so a limit of N lets exactly N through.
   */
  async relayedMessage(f: SenderFacts): Promise<GuardDecision> {
    if (!this.settings.aggregate.enabled || this.#isExempt(f)) return { ok: true };
    const open = await this.breakers.get(AGGREGATE);
    return open ? this.#refusal(open) : { ok: true };
  }

  /** A null-sender message (a bounce, a DSN) for one of our addresses, at RCPT. */
  async bounceReceived(address: string): Promise<void> {
    const b = this.settings.bounces;
    if (!b.enabled) return;
    const now = this.#clock();
    const who = source('sender', address);
    const [mine, all] = await Promise.all([this.#bounces.addAndSum(who, 1, now), b.total !== undefined ? this.#bounces.addAndSum(ALL_BOUNCES, 1, now) : Promise.resolve(0)]);
    if (mine > b.perAddress && !this.#exempt.has(who) && !(await this.breakers.get(who))) {
      await this.#trip(who, 'bounces', `${mine} bounces to ${address.toLowerCase()} in ${windowWords(b.window)}, limit ${b.perAddress}: its outbound mail is bouncing`, { bounces: mine, limit: b.perAddress }, now);
    }
    if (b.total !== undefined && all > b.total && !(await this.breakers.get(GLOBAL))) {
      await this.#trip(GLOBAL, 'bounces', `${all} bounces in ${windowWords(b.window)}, limit ${b.total}`, { bounces: all, limit: b.total }, now);
    }
  }

  /**
   * Before the transport hands `count` recipients of a queued message to the next hop: refused
   * while the global breaker or a breaker of the message's sources is open, or when the quota is
   * used up (the worker then puts the message on hold); otherwise the recipients are counted
   * against the quota (give back unsent ones with `settle`).
   */
  async admitDelivery(env: { readonly mailFrom: string; readonly client: { readonly address: string; readonly login?: string } }, count: number): Promise<Admission> {
    const now = this.#clock();
    // Our own notices (null sender from 127.0.0.1) are judged by the global breaker only.
    const facts = this.#facts(env);
    const names = [GLOBAL, ...(env.mailFrom === '' ? sourcesOf(facts, ['login']) : this.#stoppers(facts))];
    const open = await this.breakers.firstOpen(names);
    if (open) return { ok: false, reply: temp('4.3.2', `Held by the outbound breaker (${open.name})`, 451), reason: `breaker ${open.name} is open (${open.kind})`, breaker: open.name };
    const limit = this.settings.quota.limit;
    if (limit === undefined) return { ok: true, reserved: 0 };
    // One admission at a time: with the queue's concurrent deliveries, interleaved add-then-sum
    // steps each saw the others' additions, so a burst near the stop was held as a whole, the
    // alert claimed more sent than was, and every delivery crossing the mark warned again.
    // Between nodes the add-then-sum order still never admits past the stop.
    const turn = this.#quotaTurn.then(() => this.#admitQuota(limit, count, now));
    this.#quotaTurn = turn.catch(() => undefined);
    return turn;
  }

  async #admitQuota(limit: number, count: number, now: number): Promise<Admission> {
    const q = this.settings.quota;
    const stop = Math.floor(limit * q.stopAt);
    const warn = Math.floor(limit * q.warnAt);
    const used = await this.#quota.addAndSum('global', count, now);
    if (used > stop) {
      await this.#quota.add('global', -count, now);
      const before = used - count;
      if (await this.#markOnce(QUOTA_TRIPPED, q.window, now)) {
        await this.#trip(GLOBAL, 'quota', `the outbound quota's hard stop: ${before} of ${limit} recipients sent in ${windowWords(q.window)}, stop at ${stop}`, { used: before, limit, stop, windowMs: q.window }, now);
      }
      return { ok: false, reply: temp('4.3.2', `Held: outbound quota reached (${before} of ${limit} in ${windowWords(q.window)})`, 451), reason: `quota: ${before} + ${count} > stop ${stop}`, breaker: GLOBAL };
    }
    if (used >= warn && (await this.#markOnce(QUOTA_WARNED, q.window, now))) {
      await this.alerter.raise({ state: 'warning', name: 'quota', kind: 'quota', reason: `${used} of ${limit} recipients sent in ${windowWords(q.window)} (warning at ${warn}, stop at ${stop})`, figures: { used, limit, warn, stop }, at: now });
    }
    await this.#project(limit, used, count, now);
    return { ok: true, reserved: count };
  }

  /**
   * The last hour's rate carried over the whole window: a warning while the quota (or the budget,
   * with pricePer1000) is still far, once the rate would reach its warning mark. The seed's owner
   * learnt of the cost from the bill; this says so hours before the stop.
   */
  async #project(limit: number, used: number, count: number, now: number): Promise<void> {
    const q = this.settings.quota;
    const budgeted = q.pricePer1000 !== undefined && q.budget !== undefined;
    if (!q.project && !budgeted) return;
    const rate = await this.#lastHour.addAndSum('global', count, now);
    const projected = Math.round((rate * q.window) / HOUR_MS);
    const warn = Math.floor(limit * q.warnAt);
    const figures = { lastHour: rate, projected, limit, used };
    if (q.project && used < warn && projected >= warn && (await this.#markOnce(QUOTA_PROJECTED, q.window, now))) {
      await this.alerter.raise({ state: 'warning', name: 'quota', kind: 'quota-projection', reason: `at the last hour's rate (${rate} recipients) ${projected} of ${limit} would be sent in ${windowWords(q.window)}: the quota's warning mark (${warn}) would be passed`, figures, at: now });
    }
    if (q.pricePer1000 === undefined || q.budget === undefined) return;
    const cost = (projected / 1000) * q.pricePer1000;
    const spent = (used / 1000) * q.pricePer1000;
    if (spent < q.budget * q.warnAt && cost >= q.budget * q.warnAt && (await this.#markOnce(BUDGET_PROJECTED, q.window, now))) {
      await this.alerter.raise({ state: 'warning', name: 'quota', kind: 'budget-projection', reason: `at the last hour's rate the smarthost would cost ${cost.toFixed(2)} in ${windowWords(q.window)}, over ${Math.round(q.warnAt * 100)}% of the budget ${q.budget} (spent so far ${spent.toFixed(2)})`, figures: { ...figures, cost: Number(cost.toFixed(2)), budget: q.budget }, at: now });
    }
  }

  /** Gives back quota for recipients that did not reach the next hop (a temporary failure). */
  async settle(unsent: number): Promise<void> {
    if (unsent > 0 && this.settings.quota.limit !== undefined) {
      await this.#quota.add('global', -unsent, this.#clock());
      await this.#lastHour.add('global', -unsent, this.#clock());
    }
  }

  /** Opens a breaker by hand ("mailward guard trip"). True when it was not open yet. */
  async tripManually(name: string, reason: string): Promise<boolean> {
    const now = this.#clock();
    return this.breakers.trip(this.#state(name, 'manual', reason, {}, now));
  }

  /**
   * Reopens the way for a breaker's mail and forgets the evidence of the last hours (so the next
   * recipient does not trip it again at once; a source that goes on trips again after its budget).
   * Resolves the state the breaker had, or undefined when it was not open.
   */
  async release(name: string, by = 'operator'): Promise<BreakerState | undefined> {
    const now = this.#clock();
    const state = await this.breakers.release(name);
    if (name === GLOBAL) {
      await this.#bounces.clear(ALL_BOUNCES, now);
    } else if (name === AGGREGATE) {
      await this.aggregate.clear(now);
    } else {
      // The evidence of the sources that sent the same mail goes too: else the sender of a
      // released login would trip on its next recipient with the very same counts.
      const hour = Math.floor(now / HOUR);
      for (const src of [name, ...(state?.related ?? [])]) {
        await Promise.all([
          this.baselines.clear(src, now),
          this.#store.del(`guard:d:${hour}:${src}`),
          this.#store.del(`guard:d:${hour - 1}:${src}`),
          this.#trusted.clear(src, now),
          this.#bounces.clear(src, now),
        ]);
      }
    }
    mailEvent(this.#log, 'breaker', { state: 'released', breaker: name, by, ...(state ? { kind: state.kind, trippedAt: new Date(state.trippedAt).toISOString() } : { wasOpen: false }) });
    return state;
  }

  async status(): Promise<GuardStatus> {
    const now = this.#clock();
    const hour = Math.floor(now / HOUR);
    const names = new Set<string>();
    for (const h of [hour, hour - 1]) {
      const head = `guard:n:${h}:`;
      for await (const k of this.#store.scan(head)) names.add(k.slice(head.length));
    }
    const sources: SourceFigures[] = [];
    for (const src of names) {
      if (AGGREGATE_COUNTS.has(src)) continue;
      const [reading, domains] = await Promise.all([this.baselines.read(src, now), this.#store.scard(`guard:d:${hour}:${src}`)]);
      sources.push({ source: src, reading, domains });
    }
    sources.sort((a, b) => b.reading.rate - a.reading.rate);
    const q = this.settings.quota;
    const growth = this.settings.queueGrowth.enabled ? await readQueueGrowth(this.#store, this.#hostname) : undefined;
    const list = (m: Map<string, number>) => [...m].map(([subject, count]) => ({ subject, count })).sort((a, b) => b.count - a.count);
    return {
      at: now,
      breakers: await this.breakers.list(),
      ...(q.limit !== undefined ? { quota: { used: await this.#quota.sum('global', now), limit: q.limit, warn: Math.floor(q.limit * q.warnAt), stop: Math.floor(q.limit * q.stopAt), windowMs: q.window } } : {}),
      sources,
      trusted: list(await this.#trusted.subjects(now)),
      bounces: list(await this.#bounces.subjects(now)),
      ...(this.settings.aggregate.enabled ? { aggregate: await this.aggregate.read(now) } : {}),
      warnings: await this.warnings.list(now),
      ...(growth ? { queueGrowth: growth } : {}),
    };
  }

  /** Adds a domain to the source's set of this clock hour; resolves the set's size when it grew, else 0. */
  async #addDomain(src: string, domain: string, now: number): Promise<number> {
    const key = `guard:d:${Math.floor(now / HOUR)}:${src}`;
    const added = await this.#store.sadd(key, [domain.toLowerCase()], 2 * HOUR + 60_000);
    return added > 0 ? this.#store.scard(key) : 0;
  }

  /**
   * True at most once per `windowMs` of our clock (the stored time decides; the TTL only cleans
   * up). The atomic set-if-absent makes it once across nodes, as for breakers (breaker.ts).
   */
  async #markOnce(key: string, windowMs: number, now: number): Promise<boolean> {
    if (await this.#store.setIfAbsent(key, String(now), windowMs)) return true;
    const prev = await this.#store.get(key);
    if (prev !== null && now - Number(prev) < windowMs) return false;
    // Still stored but older than the window by our clock: this is a new window.
    await this.#store.set(key, String(now), windowMs);
    return true;
  }

  #state(name: string, kind: BreakerKind, reason: string, figures: Record<string, number | string>, now: number, related: readonly string[] = []): BreakerState {
    const after = this.settings.reopenAfter;
    const others = related.filter((r) => r !== name);
    return { name, kind, reason, trippedAt: now, figures, ...(after !== undefined ? { until: now + after } : {}), ...(others.length > 0 ? { related: others } : {}) };
  }

  async #trip(name: string, kind: BreakerKind, reason: string, figures: Record<string, number | string>, now: number, related: readonly string[] = []): Promise<GuardDecision> {
    const state = this.#state(name, kind, reason, figures, now, related);
    if (await this.breakers.trip(state)) {
      await this.alerter.raise({ state: 'open', name, kind, reason, figures, at: now });
      return this.#refusal(state);
    }
    // Another session or node tripped it first: refuse with what it found.
    return this.#refusal((await this.breakers.get(name)) ?? state);
  }

  #refusal(b: BreakerState): GuardDecision {
    return { ok: false, reply: suspendedReply(b.name), reason: `breaker ${b.name} is open (${b.kind}): ${b.reason}`, breaker: b };
  }
}

export function windowWords(ms: number): string {
  if (ms % 86_400_000 === 0) return ms === 86_400_000 ? '24 h' : `${ms / 86_400_000} days`;
  if (ms % HOUR === 0) return ms === HOUR ? 'the last hour' : `${ms / HOUR} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}
