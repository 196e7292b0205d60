// The queue-growth alarm (checks.outbound-guard.queueGrowth): the server samples its queue's
// depth from the catalog every `interval` and measures how fast it grew over the last `window`,
// an hourly rate. It raises an alarm on the guard's channels (log, webhook, postmaster mail) once
// per episode when that rate passes both an absolute floor and `factor` × the queue's own
// baseline (an exponentially weighted hourly growth, learnt only outside alarms), or when the
// queue passes an absolute ceiling; a recovery line ends the episode. The seed's incident had
// 400,000 messages queued before anyone looked (docs/decisions/0034-queue-growth-alarm.md).
import { windowText, type GuardSettings } from '../config/guard-schema.ts';
import type { Logger } from '../observe/log.ts';
import type { Store } from '../store/store.ts';
import type { GuardAlert } from './alerts.ts';
import { HOUR } from './baseline.ts';

export type GrowthSettings = GuardSettings['queueGrowth'];

/** One look at the queue: every catalogued message (queue/ and hold/), and of them the held ones. */
export interface DepthSample {
  readonly at: number;
  readonly messages: number;
  readonly held: number;
}

/** What is kept between samples (and in the store, for `guard status` and a restart). */
export interface GrowthState {
  /** The samples of the last window, oldest first (memory only). */
  readonly samples: readonly DepthSample[];
  /** Hourly growth the queue usually shows (messages an hour, never below 0). */
  readonly baseline: number;
  readonly baselineAt: number | undefined;
  /** The episode under way, if any. */
  readonly alarm: { readonly since: number; readonly kind: 'growth' | 'ceiling'; readonly reason: string } | undefined;
}

/** The figures of the last sample, as `guard status`, the dashboard and /metrics show them. */
export interface GrowthStatus {
  readonly at: number;
  readonly messages: number;
  readonly held: number;
  /** Messages an hour over the last window; undefined until a full window is sampled. */
  readonly growthPerHour: number | undefined;
  readonly baselinePerHour: number;
  /** The rate that raises the alarm now: max(floor, factor × baseline). */
  readonly alarmAbovePerHour: number;
  readonly ceiling: number;
  readonly alarm: GrowthState['alarm'];
}

export const initialGrowth = (): GrowthState => ({ samples: [], baseline: 0, baselineAt: undefined, alarm: undefined });

const num = (n: number): string => Math.round(n).toLocaleString('en-US');
const elapsed = (ms: number): string => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${num(ms / 60_000)} min`);

/** The hourly growth over the window ending at the last sample; undefined while less than a window is sampled. */
export function growthPerHour(samples: readonly DepthSample[], windowMs: number): number | undefined {
  const last = samples[samples.length - 1];
  const first = samples[0];
  if (!last || !first || last.at - first.at < windowMs) return undefined;
  return ((last.messages - first.messages) * HOUR) / (last.at - first.at);
}

export interface GrowthStep {
  readonly state: GrowthState;
  readonly status: GrowthStatus;
  /** An alert to send: the episode's start, or its end. */
  readonly alert?: Omit<GuardAlert, 'at'>;
}

/**
 * The rule, on one new sample (pure: unit-tested on synthetic series). Growth above max(floor,
 * factor × baseline), or a queue at the ceiling, starts an episode; it ends when the growth is at
 * most half that rate and the queue below 90% of the ceiling (so a queue hovering at a threshold
 * does not alarm at every sample).
 */
export function judgeGrowth(prev: GrowthState, sample: DepthSample, s: GrowthSettings): GrowthStep {
  // Keep the newest sample at least a window old as the reference, and everything after it.
  const all = [...prev.samples, sample];
  let from = 0;
  while (from + 1 < all.length && sample.at - all[from + 1]!.at >= s.window) from++;
  const samples = all.slice(from);
  const growth = growthPerHour(samples, s.window);
  const threshold = Math.max(s.floor, s.factor * prev.baseline);
  let alarm = prev.alarm;
  let alert: GrowthStep['alert'];
  const figures = (): GuardAlert['figures'] => ({
    queued: sample.messages,
    held: sample.held,
    growthPerHour: growth === undefined ? 'not yet measured' : Math.round(growth),
    baselinePerHour: Math.round(prev.baseline),
    alarmAbovePerHour: Math.round(threshold),
    ceiling: s.ceiling,
    see: 'mailward queue list --summary (by sender, login and recipient domain); mailward guard status',
  });
  if (!alarm) {
    const kind = growth !== undefined && growth > threshold ? 'growth' : sample.messages >= s.ceiling ? 'ceiling' : undefined;
    if (kind) {
      const reason =
        kind === 'growth'
          ? `the queue grew by ${num(growth!)} messages an hour over the last ${windowText(s.window)} (usually ${num(prev.baseline)}/h; alarm above ${num(threshold)}/h), to ${num(sample.messages)} messages`
          : `${num(sample.messages)} messages are queued (ceiling ${num(s.ceiling)})`;
      alarm = { since: sample.at, kind, reason };
      alert = { state: 'alarm', name: 'queue-growth', kind, reason: `QUEUE GROWING: ${reason}`, figures: figures() };
    }
  } else if ((growth === undefined || growth <= threshold / 2) && sample.messages < 0.9 * s.ceiling) {
    const reason = `the queue is back to normal after ${elapsed(sample.at - alarm.since)}: ${num(sample.messages)} messages, growing ${growth === undefined ? 'at an unmeasured rate' : `${num(growth)}/h`}`;
    alert = { state: 'recovered', name: 'queue-growth', kind: alarm.kind, reason, figures: { ...figures(), alarmSince: new Date(alarm.since).toISOString() } };
    alarm = undefined;
  }
  // The baseline learns the usual growth (a draining queue counts as 0), never an episode's.
  let baseline = prev.baseline;
  let baselineAt = prev.baselineAt;
  if (growth !== undefined && !alarm && !prev.alarm) {
    const dt = baselineAt === undefined ? s.window : sample.at - baselineAt;
    baseline += (1 - 2 ** (-dt / s.halfLife)) * (Math.max(0, growth) - baseline);
    baselineAt = sample.at;
  }
  const state: GrowthState = { samples, baseline, baselineAt, alarm };
  const status: GrowthStatus = { at: sample.at, messages: sample.messages, held: sample.held, growthPerHour: growth, baselinePerHour: baseline, alarmAbovePerHour: Math.max(s.floor, s.factor * baseline), ceiling: s.ceiling, alarm };
  return alert ? { state, status, alert } : { state, status };
}

const KEY = (hostname: string): string => `guard:queue-growth:${hostname}`;
const KEEP_MS = 7 * 24 * HOUR;

/** The last sample's figures as the server stored them; undefined when none (no server ran, or it is off). */
export async function readQueueGrowth(store: Store, hostname: string): Promise<GrowthStatus | undefined> {
  const raw = await store.get(KEY(hostname));
  if (raw === null) return undefined;
  try {
    return JSON.parse(raw) as GrowthStatus;
  } catch {
    return undefined;
  }
}

export interface QueueGrowthWatch {
  /** Takes one sample now (also run every `interval`). */
  sample(): Promise<void>;
  /** The last sample's figures. */
  status(): GrowthStatus | undefined;
  stop(): Promise<void>;
}

export function startQueueGrowth(d: {
  readonly settings: GrowthSettings;
  /** The queue's counts; undefined while they are not complete (the start-up scan). */
  readonly depth: () => { readonly messages: number; readonly held: number } | undefined;
  readonly store: Store;
  readonly hostname: string;
  readonly raise: (a: GuardAlert) => Promise<void>;
  readonly log: Logger;
  readonly clock: () => number;
  readonly observe?: (s: GrowthStatus) => void;
}): QueueGrowthWatch {
  let state = initialGrowth();
  let last: GrowthStatus | undefined;
  let running: Promise<void> | undefined;
  // A restart continues the baseline and an episode under way (its alarm was sent).
  const loaded = readQueueGrowth(d.store, d.hostname).then(
    (s) => {
      if (s) state = { ...state, baseline: s.baselinePerHour, baselineAt: s.at, alarm: s.alarm };
    },
    () => undefined,
  );
  const once = async (): Promise<void> => {
    await loaded;
    const depth = d.depth();
    if (!depth) return;
    const step = judgeGrowth(state, { at: d.clock(), ...depth }, d.settings);
    state = step.state;
    last = step.status;
    d.observe?.(last);
    if (step.alert) await d.raise({ ...step.alert, at: step.status.at });
    await d.store.set(KEY(d.hostname), JSON.stringify(last), KEEP_MS).catch((err: unknown) => d.log.warn({ event: 'queue-growth', err: String(err) }, 'cannot store the queue-growth figures; guard status shows older ones'));
  };
  const sample = (): Promise<void> => {
    running ??= once()
      .catch((err: unknown) => d.log.error({ event: 'queue-growth', err: String(err) }, 'the queue-growth sample failed'))
      .finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void sample(), d.settings.interval);
  timer.unref();
  return {
    sample,
    status: () => last,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
