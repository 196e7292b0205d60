// Run-time detection of a collapsed tunnel: when one client address shows many different HELO
// names AND many different sender domains within a window, it is almost surely a forwarder,
// tunnel or proxy carrying many clients (the incident's 127.0.0.1). Such an address is logged,
// shown on the dashboard, and never again treated as a trusted relay network while suspect.
import type { Logger } from '../observe/log.ts';
import type { RelayDecision, RelayFacts, RelayPolicy } from '../checks/relay.ts';

export interface TunnelOptions {
  /** How far back names are counted (default 1 h). */
  readonly windowMs?: number;
  /** Distinct HELO names from one address within the window that make it suspect (default 5) … */
  readonly heloNames?: number;
  /** … together with this many distinct sender domains (default 5). */
  readonly senderDomains?: number;
  /** How long an address stays suspect after it last met both thresholds (default 24 h). */
  readonly holdMs?: number;
  /** Addresses tracked at once; the least recently seen is forgotten first (default 10,000). */
  readonly maxAddresses?: number;
  readonly clock?: () => number;
  readonly log?: Logger;
  /** Called once each time an address becomes suspect (e.g. to show it on the dashboard). */
  readonly onSuspect?: (s: TunnelSuspect) => void;
}

export interface TunnelSuspect {
  readonly address: string;
  /** When it became suspect (ms). */
  readonly since: number;
  readonly until: number;
  readonly heloNames: number;
  readonly senderDomains: number;
  /** A few of the names seen, for the operator. */
  readonly examples: { readonly helo: readonly string[]; readonly senderDomains: readonly string[] };
}

interface Track {
  helo: Map<string, number>;
  domains: Map<string, number>;
}

export class TunnelDetector {
  readonly #windowMs: number;
  readonly #heloNames: number;
  readonly #senderDomains: number;
  readonly #holdMs: number;
  readonly #max: number;
  readonly #clock: () => number;
  readonly #log: Logger | undefined;
  readonly #onSuspect: ((s: TunnelSuspect) => void) | undefined;
  // Insertion order is recency order: an observed address is moved to the end.
  readonly #tracks = new Map<string, Track>();
  // Kept apart from the tracks, so that traffic from many other addresses cannot push a suspect out.
  readonly #suspects = new Map<string, TunnelSuspect>();

  constructor(o: TunnelOptions = {}) {
    this.#windowMs = o.windowMs ?? 3_600_000;
    this.#heloNames = o.heloNames ?? 5;
    this.#senderDomains = o.senderDomains ?? 5;
    this.#holdMs = o.holdMs ?? 86_400_000;
    this.#max = o.maxAddresses ?? 10_000;
    this.#clock = o.clock ?? Date.now;
    this.#log = o.log;
    this.#onSuspect = o.onSuspect;
  }

  /** One MAIL FROM: the client address, the HELO name it gave, its envelope sender's domain. */
  observe(clientAddress: string, helo: string | undefined, senderDomain: string | undefined): void {
    const now = this.#clock();
    const addr = clientAddress.toLowerCase();
    let t = this.#tracks.get(addr);
    if (t) this.#tracks.delete(addr);
    else t = { helo: new Map(), domains: new Map() };
    this.#tracks.set(addr, t);
    if (this.#tracks.size > this.#max) {
      const oldest = this.#tracks.keys().next().value;
      if (oldest !== undefined) this.#tracks.delete(oldest);
    }
    const h = helo?.trim().toLowerCase();
    const d = senderDomain?.trim().toLowerCase().replace(/\.$/, '');
    // Once over the threshold more names add nothing; the cap keeps memory bounded per address.
    if (h) remember(t.helo, h, now, this.#heloNames * 4);
    if (d) remember(t.domains, d, now, this.#senderDomains * 4);
    prune(t.helo, now - this.#windowMs);
    prune(t.domains, now - this.#windowMs);
    if (t.helo.size < this.#heloNames || t.domains.size < this.#senderDomains) return;
    const previous = this.#suspects.get(addr);
    const wasSuspect = previous !== undefined && previous.until > now;
    const suspect: TunnelSuspect = {
      address: addr,
      since: wasSuspect ? previous.since : now,
      until: now + this.#holdMs,
      heloNames: t.helo.size,
      senderDomains: t.domains.size,
      examples: { helo: [...t.helo.keys()].slice(-5), senderDomains: [...t.domains.keys()].slice(-5) },
    };
    this.#suspects.set(addr, suspect);
    if (wasSuspect) return;
    this.#dropExpired(now);
    this.#log?.warn(
      { event: 'tunnel-suspected', client: addr, heloNames: suspect.heloNames, senderDomains: suspect.senderDomains, examples: suspect.examples },
      `client ${addr} used ${suspect.heloNames} HELO names and ${suspect.senderDomains} sender domains within ${Math.round(this.#windowMs / 60_000)} min: probably a tunnel or proxy carrying many clients; relay.trustedNetworks no longer applies to it. Fix: send the real client address with PROXY protocol (listeners.<name>.proxy.trusted) and remove the address from relay.trustedNetworks`,
    );
    this.#onSuspect?.(suspect);
  }

  /** A suspect found by another process's detector (acceptor processes share the primary's). */
  adopt(suspect: TunnelSuspect): void {
    this.#suspects.set(suspect.address.toLowerCase(), suspect);
  }

  isSuspect(address: string): boolean {
    const s = this.#suspects.get(address.toLowerCase());
    return s !== undefined && s.until > this.#clock();
  }

  /** Addresses suspect now. */
  suspects(): TunnelSuspect[] {
    const now = this.#clock();
    return [...this.#suspects.values()].filter((s) => s.until > now);
  }

  /** The operator vouches for an address again (e.g. after fixing the forwarder). */
  clear(address: string): boolean {
    const a = address.toLowerCase();
    this.#tracks.delete(a);
    return this.#suspects.delete(a);
  }

  #dropExpired(now: number): void {
    for (const [a, s] of this.#suspects) if (s.until <= now) this.#suspects.delete(a);
  }
}

function remember(m: Map<string, number>, key: string, now: number, cap: number): void {
  m.delete(key);
  m.set(key, now);
  if (m.size > cap) {
    const first = m.keys().next().value;
    if (first !== undefined) m.delete(first);
  }
}

function prune(m: Map<string, number>, before: number): void {
  // Oldest first (insertion order), so stop at the first one still inside the window.
  for (const [k, at] of m) {
    if (at >= before) break;
    m.delete(k);
  }
}

/**
 * Wraps the relay policy: a permission that came from relay.trustedNetworks is withdrawn for an
 * address the detector suspects. A login or a local domain still decides as before.
 */
export function withTunnelGuard(policy: RelayPolicy, detector: Pick<TunnelDetector, 'isSuspect'>): RelayPolicy {
  return {
    decide(facts: RelayFacts): RelayDecision {
      const d = policy.decide(facts);
      if (d.allowed && d.network !== undefined && detector.isSuspect(facts.clientAddress)) {
        return { allowed: false, reason: `client ${facts.clientAddress} is in relay.trustedNetworks (${d.network}) but looks like a tunnel or proxy carrying many clients (many HELO names and sender domains); not trusted` };
      }
      return d;
    },
  };
}
