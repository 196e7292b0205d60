// Rate-limit rules: each counts connections, messages or recipients per key (client, network,
// login, sender, recipient domain, whole server) in a sliding window. A count is taken only when
// every rule lets it through, so what a rule refuses never counts against the client later.
import type { RateRule, RuleCount } from '../config/guard-schema.ts';
import type { Logger } from '../observe/log.ts';
import type { Store } from '../store/store.ts';
import { clientKey, networkKey } from './sources.ts';
import { SlidingCounter } from './window.ts';

export interface LimitFacts {
  readonly listener: string;
  readonly clientAddress: string;
  readonly login?: string;
  /** The envelope sender; null for <>; undefined before MAIL. */
  readonly sender?: string | null;
  readonly recipientDomain?: string;
  /** Whether the thing counted goes to our domains, elsewhere, or (a message) both. */
  readonly direction?: 'inbound' | 'outbound' | 'both';
}

export interface LimitRefusal {
  readonly rule: RateRule;
  readonly subject: string;
  /** The count including the refused one. */
  readonly count: number;
}

export interface LimitFigure {
  readonly rule: RateRule;
  /** Subjects with a count in the current window, largest first. */
  readonly top: ReadonlyArray<{ readonly subject: string; readonly count: number }>;
}

export function subjectOf(rule: RateRule, f: LimitFacts): string | undefined {
  switch (rule.key) {
    case 'client':
      return clientKey(f.clientAddress);
    case 'network':
      return networkKey(f.clientAddress);
    case 'login':
      return f.login?.toLowerCase();
    case 'sender':
      return f.sender === undefined ? undefined : f.sender === null || f.sender === '' ? '<>' : f.sender.toLowerCase();
    case 'recipient-domain':
      return f.recipientDomain?.toLowerCase();
    case 'server':
      return '*';
  }
}

function applies(rule: RateRule, count: RuleCount, f: LimitFacts): boolean {
  if (rule.count !== count) return false;
  if (rule.listeners && !rule.listeners.includes(f.listener)) return false;
  if (rule.direction === 'any' || f.direction === undefined || f.direction === 'both') return true;
  return rule.direction === f.direction;
}

export class RateLimits {
  readonly #counters: Map<string, SlidingCounter>;

  constructor(
    private readonly store: Store,
    readonly rules: readonly RateRule[],
    private readonly log: Logger,
  ) {
    this.#counters = new Map(rules.map((r) => [r.name, new SlidingCounter(store, `guard:rl:${r.name}`, r.window)]));
  }

  /** Which counts any rule takes (a check places itself only where it has work). */
  counts(): Set<RuleCount> {
    return new Set(this.rules.map((r) => r.count));
  }

  /**
   * Counts one `count` for every rule that applies; when one is over its limit, takes every count
   * of this call back and answers the refusal.
   */
  async consume(count: RuleCount, f: LimitFacts, now: number): Promise<LimitRefusal | undefined> {
    const taken: Array<{ counter: SlidingCounter; subject: string }> = [];
    for (const rule of this.rules) {
      if (!applies(rule, count, f)) continue;
      const subject = subjectOf(rule, f);
      if (subject === undefined) continue;
      const counter = this.#counters.get(rule.name)!;
      const n = await counter.addAndSum(subject, 1, now);
      taken.push({ counter, subject });
      if (n > rule.limit) {
        await Promise.all(taken.map((t) => t.counter.add(t.subject, -1, now)));
        return { rule, subject, count: n };
      }
      if (rule.warnAt !== undefined && n >= rule.warnAt * rule.limit) await this.#warn(rule, counter, subject, n, now);
    }
    return undefined;
  }

  async #warn(rule: RateRule, counter: SlidingCounter, subject: string, n: number, now: number): Promise<void> {
    // Once per period and subject, however many counts pass the mark.
    const first = await this.store.setIfAbsent(`guard:rlw:${rule.name}:${counter.period(now)}:${subject}`, String(now), 2 * rule.window);
    if (!first) return;
    this.log.warn(
      { event: 'limit-warning', rule: rule.name, key: rule.key, subject, count: n, limit: rule.limit, window: rule.window },
      `${rule.key} ${subject} reached ${n} of ${rule.limit} ${rule.count} (rule ${rule.name})`,
    );
  }

  /** The current figures of every rule (for `guard status`). */
  async figures(now: number, top = 10): Promise<LimitFigure[]> {
    const out: LimitFigure[] = [];
    for (const rule of this.rules) {
      const subjects = await this.#counters.get(rule.name)!.subjects(now);
      const list = [...subjects].map(([subject, count]) => ({ subject, count })).sort((a, b) => b.count - a.count);
      out.push({ rule, top: list.slice(0, top) });
    }
    return out;
  }

  /** Forgets one subject's count under one rule (an operator's reset). */
  async reset(ruleName: string, subject: string, now: number): Promise<boolean> {
    const c = this.#counters.get(ruleName);
    if (!c) return false;
    await c.clear(subject, now);
    return true;
  }
}
