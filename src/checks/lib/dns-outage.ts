// DNS outages, logged once: a resolver (or a DNS list's zone) that stops answering is reported
// when the first lookup times out and again when it answers, with how long it was down and how
// many lookups failed meanwhile; each failed lookup itself is only a debug line in its check.
import { Resolver } from 'node:dns/promises';
import { DeadlineError } from '../../core/deadline.ts';
import { Outage } from '../../core/outage.ts';
import type { Logger } from '../../observe/log.ts';

/** Resolver errors that mean no answer came at all (SERVFAIL, REFUSED… are answers). */
const NO_ANSWER = new Set(['ETIMEOUT', 'ECONNREFUSED']);

/**
 * Whether a failed lookup got no answer from the server. ECANCELLED is a query we abandoned
 * (lib/dns.ts): a time-out when a deadline ended it (the pipeline's check deadline and the dnsbl
 * zone time-out both abort with a DeadlineError), nothing we learnt when the client went away.
 */
export function isNoAnswer(code: string, signal?: AbortSignal): boolean {
  if (NO_ANSWER.has(code)) return true;
  if (code !== 'ECANCELLED' || !signal?.aborted) return false;
  return signal.reason instanceof DeadlineError;
}

/** The servers a resolver asks, for the operator ("the system's" when none are set). */
export function serversOf(dns: Resolver): string {
  try {
    const s = dns.getServers();
    return s.length > 0 ? s.join(', ') : "the system's resolver";
  } catch {
    return "the system's resolver";
  }
}

/** What the first failed lookup of an outage was, for its log line. */
export interface LookupFacts {
  readonly check: string;
  readonly domain: string;
  readonly err: string;
}

/** One resolver's state, shared by every check that asks through it. */
export class ResolverWatch {
  readonly #outage = new Outage();
  readonly #dns: Resolver;
  readonly #log: Logger;
  #probing = false;

  constructor(dns: Resolver, log: Logger) {
    this.#dns = dns;
    this.#log = log;
  }

  get isDown(): boolean {
    return this.#outage.isDown;
  }

  /** Taken before a lookup and handed back with its failure (see Outage.generation). */
  get generation(): number {
    return this.#outage.generation;
  }

  /** A lookup got no answer: the first one of an outage is logged as a warning. */
  noAnswer(generation: number, facts: LookupFacts): void {
    if (!this.#outage.fail(generation)) return;
    const servers = serversOf(this.#dns);
    this.#log.warn(
      { event: 'dns-outage', servers, check: facts.check, domain: facts.domain, err: facts.err },
      `DNS resolver ${servers} is not answering (${facts.err} looking up ${facts.domain}); mail that needs a DNS answer is deferred (4xx) until it answers. ` +
        'Check that the servers in dns.servers are running and reachable from this host, or raise dns.timeout if they are only slow',
    );
  }

  /**
   * A lookup got an answer. `fresh`: it came from the server now (an error answer such as
   * SERVFAIL is never cached); otherwise it may be from the answer cache, which keeps serving
   * while the server is down, so an uncached question about `domain` confirms the recovery.
   */
  answered(fresh: boolean, domain: string): void {
    if (!this.#outage.isDown) return;
    if (fresh) return this.#recovered();
    if (this.#probing) return;
    this.#probing = true;
    const generation = this.#outage.generation;
    // Resolver.prototype's method asks the server even when `dns` is a caching resolver.
    Resolver.prototype.resolveMx.call(this.#dns, domain).then(
      () => this.#probed(generation, ''),
      (err: unknown) => {
        const code = (err as { code?: unknown } | null)?.code;
        this.#probed(generation, typeof code === 'string' ? code : '');
      },
    );
  }

  #probed(generation: number, code: string): void {
    this.#probing = false;
    if (generation === this.#outage.generation && !NO_ANSWER.has(code)) this.#recovered();
  }

  #recovered(): void {
    const end = this.#outage.recover();
    if (!end) return;
    const servers = serversOf(this.#dns);
    this.#log.info(
      { event: 'dns-recovered', servers, downMs: end.downMs, failures: end.failures },
      `DNS resolver ${servers} answers again after ${(end.downMs / 1000).toFixed(1)} s; ${end.failures} lookup(s) failed and were deferred meanwhile`,
    );
  }
}

/** One DNS list zone's state: a list that does not answer is skipped, which is logged once. */
export class ZoneWatch {
  readonly #outage = new Outage();

  constructor(
    private readonly log: Logger,
    private readonly dns: Resolver,
    private readonly zone: string,
    private readonly check: string,
  ) {}

  get generation(): number {
    return this.#outage.generation;
  }

  failed(generation: number, err: string): void {
    if (!this.#outage.fail(generation)) return;
    const servers = serversOf(this.dns);
    this.log.warn(
      { event: 'dnsbl-outage', check: this.check, zone: this.zone, servers, err },
      `DNS list ${this.zone} is not answering through ${servers} (${err}); it is skipped (mail is not refused by it) until it answers. ` +
        `Check that the zone name in checks.${this.check}.zones is right and that your resolver may query that list, or raise checks.${this.check}.timeout if it is only slow`,
    );
  }

  /** A fresh answer from the list (a cached one proves nothing). */
  answered(): void {
    const end = this.#outage.recover();
    if (!end) return;
    this.log.info(
      { event: 'dnsbl-recovered', check: this.check, zone: this.zone, servers: serversOf(this.dns), downMs: end.downMs, failures: end.failures },
      `DNS list ${this.zone} answers again after ${(end.downMs / 1000).toFixed(1)} s; ${end.failures} lookup(s) were skipped meanwhile`,
    );
  }
}

// One watch per resolver object: the checks built from one server's CheckEnv share its resolver,
// so one outage is one pair of lines, whichever checks ran into it. Weakly held: a replaced
// resolver takes its state with it.
const resolvers = new WeakMap<Resolver, ResolverWatch>();
const zones = new WeakMap<Resolver, Map<string, ZoneWatch>>();

export function resolverWatch(dns: Resolver, log: Logger): ResolverWatch {
  let w = resolvers.get(dns);
  if (!w) {
    w = new ResolverWatch(dns, log);
    resolvers.set(dns, w);
  }
  return w;
}

export function zoneWatch(dns: Resolver, log: Logger, zone: string, check: string): ZoneWatch {
  let m = zones.get(dns);
  if (!m) {
    m = new Map();
    zones.set(dns, m);
  }
  let w = m.get(zone);
  if (!w) {
    w = new ZoneWatch(log, dns, zone, check);
    m.set(zone, w);
  }
  return w;
}

/**
 * Feeds one lib/mail-domain.ts answer to the resolver's watch: true when it was a time-out (the
 * check then logs its own line at debug only). `detail` of a temporary answer is "MX: ETIMEOUT"
 * or "A/AAAA: ETIMEOUT, ESERVFAIL".
 */
export function noteMailDomain(
  watch: ResolverWatch,
  generation: number,
  r: { readonly kind: string; readonly detail?: string },
  facts: { readonly check: string; readonly domain: string },
  signal: AbortSignal,
): void {
  if (r.kind !== 'temporary') return watch.answered(false, facts.domain);
  const detail = r.detail ?? '';
  const codes = detail.slice(detail.indexOf(':') + 1).split(',').map((c) => c.trim());
  if (codes.every((c) => isNoAnswer(c, signal))) watch.noAnswer(generation, { ...facts, err: detail });
  // A client that went away leaves an abandoned query: nothing learnt about the resolver.
  else if (!codes.every((c) => c === 'ECANCELLED')) watch.answered(true, facts.domain);
}
