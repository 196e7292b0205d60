// Breaker state in the store: one key per open breaker ("guard:breaker:<name>"), so every node
// sees the same state, it survives a restart, and the node whose atomic set-if-absent trips a
// breaker is the one that raises the alert (once, however many nodes saw the same excess).
import type { Store } from '../store/store.ts';

export type BreakerKind = 'quota' | 'baseline' | 'domains' | 'trusted-network' | 'bounces' | 'manual' | 'new-domains' | 'failures';

export interface BreakerState {
  /** "global", or a source such as "login:alice@example.org". */
  readonly name: string;
  readonly kind: BreakerKind;
  /** For the operator: what was seen, e.g. "101 relayed recipients in the last hour, limit 100". */
  readonly reason: string;
  /** Milliseconds since the epoch. */
  readonly trippedAt: number;
  /** The figures behind the reason, for the webhook and `guard status`. */
  readonly figures: Readonly<Record<string, number | string>>;
  /** When it closes by itself (guard.reopenAfter); absent: open until released. */
  readonly until?: number;
  /** The other sources of the mail that tripped it (their evidence is cleared on release too). */
  readonly related?: readonly string[];
}

const PREFIX = 'guard:breaker:';

export class Breakers {
  constructor(
    private readonly store: Store,
    private readonly clock: () => number,
  ) {}

  /** Opens a breaker; true when this call opened it (false: it was open already). */
  async trip(state: BreakerState): Promise<boolean> {
    const ttl = state.until !== undefined ? Math.max(1, state.until - this.clock()) : undefined;
    if (await this.store.setIfAbsent(PREFIX + state.name, JSON.stringify(state), ttl)) return true;
    if (await this.get(state.name)) return false;
    // Still stored but closed by our clock (its `until` passed before the store's TTL ran out).
    await this.store.set(PREFIX + state.name, JSON.stringify(state), ttl);
    return true;
  }

  /** The open breaker of that name, if any. */
  async get(name: string): Promise<BreakerState | undefined> {
    return this.#parse(await this.store.get(PREFIX + name), name);
  }

  /** The first open breaker among `names` (in their order). */
  async firstOpen(names: readonly string[]): Promise<BreakerState | undefined> {
    const states = await Promise.all(names.map((n) => this.get(n)));
    return states.find((s) => s !== undefined);
  }

  /** Every open breaker, global first, then by the time it tripped. */
  async list(): Promise<BreakerState[]> {
    const seen = new Set<string>();
    const out: BreakerState[] = [];
    for await (const key of this.store.scan(PREFIX)) {
      if (seen.has(key)) continue;
      seen.add(key);
      const s = this.#parse(await this.store.get(key), key.slice(PREFIX.length));
      if (s) out.push(s);
    }
    return out.sort((a, b) => (a.name === 'global' ? -1 : b.name === 'global' ? 1 : a.trippedAt - b.trippedAt));
  }

  /** Closes a breaker; resolves the state it had, or undefined when it was not open. */
  async release(name: string): Promise<BreakerState | undefined> {
    const state = await this.get(name);
    await this.store.del(PREFIX + name);
    return state;
  }

  #parse(raw: string | null, name: string): BreakerState | undefined {
    if (raw === null) return undefined;
    let s: BreakerState;
    try {
      s = JSON.parse(raw) as BreakerState;
    } catch {
      // A value we cannot read still means someone tripped it: stay on the safe side.
      return { name, kind: 'manual', reason: 'unreadable breaker state', trippedAt: 0, figures: {} };
    }
    // The stored TTL runs on the store's clock; `until` on ours (tests step it).
    if (s.until !== undefined && s.until <= this.clock()) return undefined;
    return s;
  }
}
