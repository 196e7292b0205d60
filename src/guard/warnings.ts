// Early warnings: a source (or the aggregate) that reaches a share of a breaker's threshold, or
// sends a multiple of its own baseline, is announced before it trips — a slow drip of one message
// every few seconds used to be seen only at the trip, minutes later. Once per source and clock
// hour across nodes (an atomic set-if-absent), kept in the store for the dashboard.
import type { GuardSettings } from '../config/guard-schema.ts';
import type { Store } from '../store/store.ts';
import type { Measurement } from './aggregate.ts';
import type { Alerter } from './alerts.ts';
import { HOUR } from './baseline.ts';

const PREFIX = 'guard:warn:';

/** A warning as stored (and shown by `guard status` and the dashboard). */
export interface EarlyWarning {
  readonly name: string;
  readonly kind: string;
  readonly reason: string;
  readonly at: number;
  readonly value: number;
  readonly limit: number;
}

const fmt = (n: number): string => String(Math.round(n * 10) / 10);

/** Why `m` deserves a warning now, or undefined. */
export function warningReason(m: Measurement, w: GuardSettings['earlyWarning']): string | undefined {
  if (m.value > m.limit) return undefined; // that is a trip
  if (m.value >= w.share * m.limit) return `${fmt(m.value)} of ${fmt(m.limit)} (${Math.round(w.share * 100)}% of the breaker's threshold, ${m.kind}) — ${m.reason}`;
  const b = m.baseline;
  if (b !== undefined && b > 0 && m.value >= w.baselineFactor * b && m.value >= w.minimum) {
    return `${fmt(m.value)} is ${fmt(m.value / b)} × its baseline ${fmt(b)} (warning from ${w.baselineFactor} ×) — ${m.reason}`;
  }
  return undefined;
}

export class EarlyWarnings {
  constructor(
    private readonly store: Store,
    private readonly alerter: Alerter,
    private readonly settings: GuardSettings['earlyWarning'],
  ) {}

  /** Raises a warning for each measurement that deserves one, once per source and clock hour. */
  async judge(measurements: readonly Measurement[], now: number): Promise<void> {
    if (!this.settings.enabled) return;
    for (const m of measurements) {
      const reason = warningReason(m, this.settings);
      if (reason === undefined) continue;
      const w: EarlyWarning = { name: m.name, kind: m.kind, reason, at: now, value: m.value, limit: m.limit };
      if (!(await this.store.setIfAbsent(`${PREFIX}${Math.floor(now / HOUR)}:${m.name}`, JSON.stringify(w), 2 * HOUR))) continue;
      await this.alerter.raise({ state: 'warning', name: m.name, kind: m.kind, reason, figures: { ...m.figures, warnAt: Number((this.settings.share * m.limit).toFixed(2)) }, at: now });
    }
  }

  /** The warnings of this clock hour and the last, newest first. */
  async list(now: number): Promise<EarlyWarning[]> {
    const hour = Math.floor(now / HOUR);
    const out: EarlyWarning[] = [];
    for (const h of [hour, hour - 1]) {
      for await (const key of this.store.scan(`${PREFIX}${h}:`)) {
        const raw = await this.store.get(key);
        if (raw === null) continue;
        try {
          out.push(JSON.parse(raw) as EarlyWarning);
        } catch {
          // an unreadable entry is only a lost line on the dashboard
        }
      }
    }
    return out.sort((a, b) => b.at - a.at);
  }
}
