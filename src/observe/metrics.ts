// Prometheus metrics (prom-client, a registry of our own): counters of mail events and decisions
// by check, stage and listener, relayed mail by what allowed it, delivery outcomes and latency,
// queue depth, breaker state (set by the guard) and the usual process metrics. Label values come
// only from bounded sets (listener, check and transport names), never from addresses or logins.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { mailEvents, type MailEventBus, type PublishedEvent } from './events.ts';

export interface QueueFigures {
  /** Messages in the queue (waiting, deferred or being delivered), not counting held ones. */
  readonly depth: number;
  readonly held: number;
  /** Of `depth`, messages that have been tried and wait for a retry. */
  readonly deferred: number;
  /** Receipt time of the oldest message in the queue or on hold (ms), null when empty. */
  readonly oldestReceivedAt: number | null;
  readonly oldestId?: string;
  /** Files that could not be read as messages (only a spool scan counts them; the catalog has none). */
  readonly corrupt?: number;
}

export type QueueStatsSource = () => Promise<QueueFigures> | QueueFigures;

export interface MetricsOptions {
  /** Read at each scrape for the queue gauges. */
  readonly queueStats?: QueueStatsSource;
  /** Read at each scrape: password hashes run and refused (core/password.ts HashPool.counts). */
  readonly passwordHashes?: () => { readonly hashed: number; readonly refused: number };
  /** Read at each scrape: recipient lookups made in the directory (Directory.recipientLookups). */
  readonly directoryLookups?: () => number;
  /** Node.js process metrics (CPU, memory, event loop, GC); default true. */
  readonly processMetrics?: boolean;
  readonly clock?: () => number;
}

/** Events that are a decision on mail at SMTP time. */
export const DECISIONS: ReadonlySet<string> = new Set(['rejected', 'deferred', 'discarded', 'quarantined', 'queued']);
// Remembered receipt times, for the latency of deliveries whose event does not carry it.
const MAX_PENDING = 100_000;

const str = (v: unknown, fallback = 'none'): string => (typeof v === 'string' && v !== '' ? v : fallback);

/** The kinds of permission in a queued event's `relay` field: "login:a@b,trusted-network:x" → login, trusted-network. */
export function relayKinds(relay: unknown): string[] {
  if (typeof relay !== 'string' || relay === '') return [];
  return [...new Set(relay.split(',').map((r) => r.split(':')[0] ?? r))];
}

export class Metrics {
  readonly registry = new Registry();
  readonly #events: Counter<'event' | 'listener'>;
  readonly #decisions: Counter<'decision' | 'stage' | 'check' | 'listener'>;
  readonly #auth: Counter<'result' | 'listener'>;
  readonly #relayed: Counter<'via'>;
  readonly #deliveries: Counter<'result' | 'transport'>;
  readonly #latency: Histogram<'transport'>;
  readonly #breaker: Gauge<'name'>;
  readonly #tunnels: Counter;
  readonly #warnings: Counter<'kind'>;
  readonly #tlsPolicy: Counter<'policy' | 'mode' | 'result'>;
  readonly #selfProbe: Gauge<'target'>;
  readonly #outboundStopped: Gauge;
  readonly #queueGrowth: Gauge<'figure'>;
  readonly #queuedAt = new Map<string, number>();
  readonly #clock: () => number;
  /** Reads the figures the gauges of one scrape share (the queue's). */
  #beforeScrape: () => Promise<void> = () => Promise.resolve();

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    this.#clock = opts.clock ?? Date.now;
    this.#events = new Counter({ name: 'mailward_events_total', help: 'Mail events (one log line each), by event and listener.', labelNames: ['event', 'listener'], registers });
    this.#decisions = new Counter({
      name: 'mailward_decisions_total',
      help: 'Decisions on mail: queued, rejected, deferred or discarded, by SMTP stage, the check that decided, and listener.',
      labelNames: ['decision', 'stage', 'check', 'listener'],
      registers,
    });
    this.#auth = new Counter({ name: 'mailward_auth_total', help: 'AUTH attempts by result (success, failure, blocked) and listener.', labelNames: ['result', 'listener'], registers });
    this.#relayed = new Counter({ name: 'mailward_relayed_messages_total', help: 'Messages accepted for other domains, by what allowed them to leave (login, trusted-network).', labelNames: ['via'], registers });
    this.#deliveries = new Counter({ name: 'mailward_deliveries_total', help: 'Delivery attempts per recipient by result (delivered, bounced, deferred) and transport.', labelNames: ['result', 'transport'], registers });
    this.#latency = new Histogram({
      name: 'mailward_delivery_latency_seconds',
      help: 'Time from acceptance to delivery, per recipient.',
      labelNames: ['transport'],
      buckets: [1, 5, 15, 60, 300, 900, 3600, 14_400, 86_400, 432_000],
      registers,
    });
    this.#breaker = new Gauge({ name: 'mailward_breaker_open', help: 'Outbound breakers: 1 while open (mail from the source is held or refused), 0 when closed.', labelNames: ['name'], registers });
    this.#warnings = new Counter({ name: 'mailward_guard_warnings_total', help: 'Early warnings of the outbound guard (a source at half a breaker threshold, or 3 × its baseline), by the breaker kind it approaches.', labelNames: ['kind'], registers });
    this.#selfProbe = new Gauge({ name: 'mailward_self_probe_relayed', help: 'Relay tricks the last relay self-probe of a target got accepted without a login (selfProbe): anything above 0 is an open relay.', labelNames: ['target'], registers });
    this.#outboundStopped = new Gauge({ name: 'mailward_outbound_stopped', help: 'The operator\'s "stop all outbound" switch: 1 while all mail to other servers is kept queued (mailward outbound start), 0 when it flows.', registers });
    this.#queueGrowth = new Gauge({
      name: 'mailward_queue_growth',
      help: 'The queue-growth alarm (checks.outbound-guard.queueGrowth) at its last sample: messages (queued and held, from the catalog), per_hour (growth over the window; absent until a window is sampled), baseline_per_hour, alarm_above_per_hour, alarm (1 during an episode).',
      labelNames: ['figure'],
      registers,
    });
    this.#tunnels = new Counter({ name: 'mailward_tunnel_suspected_total', help: 'Client addresses found to carry many clients (many HELO names and sender domains): probably a tunnel or proxy.', registers });
    this.#tlsPolicy = new Counter({
      name: 'mailward_tls_policy_decisions_total',
      help: 'Outbound TLS policy (MTA-STS) decisions per MX session or host: success, an RFC 8460 failure type (a skipped MX is validation-failure), or a policy fetch failure; by policy type and mode.',
      labelNames: ['policy', 'mode', 'result'],
      registers,
    });
    const source = opts.queueStats;
    if (source) {
      let last: QueueFigures | undefined;
      const clock = this.#clock;
      // Read once before each scrape (text()), and the gauges set from it synchronously:
      // prom-client runs the collectors of one scrape together, not in order, so a gauge that
      // read the figures another collector was still awaiting showed 0 or the last scrape's.
      this.#beforeScrape = async () => {
        try {
          last = await source();
        } catch {
          // A failed read keeps the last figures: a scrape must not fail because the spool is busy.
        }
      };
      new Gauge({
        name: 'mailward_queue_messages',
        help: 'Messages in the queue by state: queued (waiting or being delivered), deferred (of those, waiting for a retry), held.',
        labelNames: ['state'],
        registers,
        collect() {
          if (!last) return;
          this.set({ state: 'queued' }, last.depth);
          this.set({ state: 'deferred' }, last.deferred);
          this.set({ state: 'held' }, last.held);
        },
      });
      new Gauge({
        name: 'mailward_queue_oldest_seconds',
        help: 'Age of the oldest queued or held message; 0 when the queue is empty.',
        registers,
        collect() {
          this.set(last?.oldestReceivedAt ? Math.max(0, (clock() - last.oldestReceivedAt) / 1000) : 0);
        },
      });
    }
    const hashes = opts.passwordHashes;
    if (hashes) {
      const seen = { hashed: 0, refused: 0 };
      new Counter({
        name: 'mailward_password_hashes_total',
        help: 'Password checks (scrypt) by the login hashing threads of this process: done, or refused at once because every thread was busy and the queue full (AUTH got 454). Unknown logins are hashed like known ones.',
        labelNames: ['result'],
        registers,
        collect() {
          const now = hashes();
          this.inc({ result: 'done' }, now.hashed - seen.hashed);
          this.inc({ result: 'refused' }, now.refused - seen.refused);
          seen.hashed = now.hashed;
          seen.refused = now.refused;
        },
      });
    }
    const lookups = opts.directoryLookups;
    if (lookups) {
      let seen = 0;
      new Counter({
        name: 'mailward_directory_lookups_total',
        help: 'Recipient lookups in the mailbox directory (one per RCPT of a local domain, shared by the checks and routing; notices and reports add theirs).',
        registers,
        collect() {
          const now = lookups();
          this.inc(now - seen);
          seen = now;
        },
      });
    }
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Counts one published mail event. */
  observe(e: PublishedEvent): void {
    const f = e.fields;
    const listener = str(f.listener);
    this.#events.inc({ event: e.event, listener });
    // A `deferred` with a stage is a check's 4xx to a client; without one it is a delivery retry.
    const delivery = e.event === 'delivered' || e.event === 'bounced' || (e.event === 'deferred' && f.stage === undefined);
    if (delivery) {
      const transport = str(f.transport, 'unknown');
      this.#deliveries.inc({ result: e.event, transport });
      if (e.event === 'delivered') {
        const seconds = this.#latencyOf(e);
        if (seconds !== undefined) this.#latency.observe({ transport }, seconds);
      }
      return;
    }
    if (DECISIONS.has(e.event)) {
      this.#decisions.inc({ decision: e.event, stage: str(f.stage, e.event === 'queued' ? 'data' : 'none'), check: str(f.check), listener });
    }
    if (e.event === 'queued') {
      for (const via of relayKinds(f.relay)) this.#relayed.inc({ via });
      if (typeof f.queueId === 'string') {
        this.#queuedAt.set(f.queueId, e.at);
        if (this.#queuedAt.size > MAX_PENDING) {
          const first = this.#queuedAt.keys().next().value;
          if (first !== undefined) this.#queuedAt.delete(first);
        }
      }
    }
    if (e.event === 'tls-policy') this.#tlsPolicy.inc({ policy: str(f.policy), mode: str(f.mode), result: str(f.result, 'unknown') });
    if (e.event === 'auth') this.#auth.inc({ result: str(f.result, 'unknown'), listener });
    if (e.event === 'breaker') {
      const name = typeof f.breaker === 'string' ? f.breaker : typeof f.name === 'string' ? f.name : undefined;
      const state = typeof f.state === 'string' ? f.state : undefined;
      // The guard logs open (tripped), released, and warning (the quota's mark: not a breaker).
      if (name && (state === 'open' || state === 'released' || state === 'closed')) this.setBreakerState(name, state === 'open');
    }
  }

  #latencyOf(e: PublishedEvent): number | undefined {
    const f = e.fields;
    if (typeof f.delayMs === 'number') return f.delayMs / 1000;
    if (typeof f.receivedAt === 'number') return Math.max(0, (e.at - f.receivedAt) / 1000);
    const at = typeof f.queueId === 'string' ? this.#queuedAt.get(f.queueId) : undefined;
    return at === undefined ? undefined : Math.max(0, (e.at - at) / 1000);
  }

  /** Subscribes to the mail events; returns the unsubscribe function. */
  attach(bus: MailEventBus = mailEvents): () => void {
    return bus.subscribe((e) => this.observe(e));
  }

  /** For the guard: a breaker opened (true) or closed (false). */
  setBreakerState(name: string, open: boolean): void {
    this.#breaker.set({ name }, open ? 1 : 0);
  }

  /** For the guard's watch: an early warning was raised (anywhere: the store is shared). */
  guardWarning(kind: string): void {
    this.#warnings.inc({ kind });
  }

  /** The relay self-probe's last result for one target. */
  selfProbe(target: string, relayed: number): void {
    this.#selfProbe.set({ target }, relayed);
  }

  /** The "stop all outbound" switch changed (or was read at start). */
  outboundStopped(stopped: boolean): void {
    this.#outboundStopped.set(stopped ? 1 : 0);
  }

  /** The queue-growth watch's last sample (guard/queue-growth.ts GrowthStatus). */
  queueGrowth(s: { readonly messages: number; readonly growthPerHour: number | undefined; readonly baselinePerHour: number; readonly alarmAbovePerHour: number; readonly alarm: unknown }): void {
    const g = this.#queueGrowth;
    g.set({ figure: 'messages' }, s.messages);
    if (s.growthPerHour !== undefined) g.set({ figure: 'per_hour' }, s.growthPerHour);
    g.set({ figure: 'baseline_per_hour' }, s.baselinePerHour);
    g.set({ figure: 'alarm_above_per_hour' }, s.alarmAbovePerHour);
    g.set({ figure: 'alarm' }, s.alarm ? 1 : 0);
  }

  tunnelSuspected(): void {
    this.#tunnels.inc();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  async text(): Promise<string> {
    await this.#beforeScrape();
    return this.registry.metrics();
  }
}
