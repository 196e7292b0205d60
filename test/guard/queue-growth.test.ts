// The queue-growth rule on synthetic series (one sample a minute): a queue growing faster than the
// floor and its baseline alarms once per episode and recovers with one line; a baseline learnt
// from a busy installation's usual growth raises the bar; the ceiling alarms however slowly the
// queue grew; the schema refuses a window shorter than the interval, naming the setting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuardSchema } from '../../src/config/guard-schema.ts';
import { initialGrowth, judgeGrowth, type GrowthState, type GrowthStep } from '../../src/guard/queue-growth.ts';
import { guardSettings } from '../../src/config/guard-schema.ts';

const MIN = 60_000;

/** Feeds depths (one a minute) and returns the alerts raised, as "state kind @minute". */
function run(depths: readonly number[], settings: Record<string, unknown> = {}, start: GrowthState = initialGrowth()): { alerts: string[]; last: GrowthStep } {
  const s = GuardSchema.parse({ queueGrowth: settings }).queueGrowth;
  let state = start;
  const alerts: string[] = [];
  let last: GrowthStep | undefined;
  // A series that continues `start` begins a minute after its last sample.
  const t0 = start.samples.length > 0 ? start.samples[start.samples.length - 1]!.at + MIN : 0;
  depths.forEach((messages, i) => {
    last = judgeGrowth(state, { at: t0 + i * MIN, messages, held: 0 }, s);
    state = last.state;
    if (last.alert) alerts.push(`${last.alert.state} ${last.alert.kind} @${i}`);
  });
  return { alerts, last: last! };
}

test('queue growth: defaults on, 1m samples, 15m window, +500/h floor, 5× baseline, 10,000 ceiling', () => {
  const s = GuardSchema.parse({}).queueGrowth;
  assert.deepEqual(s, { enabled: true, interval: MIN, window: 15 * MIN, floor: 500, factor: 5, ceiling: 10_000, halfLife: 24 * 3_600_000 });
});

test('queue growth: an incident-sized climb alarms once and recovers once, when it stops', () => {
  // Flat for 20 minutes, then +100 a minute (6,000/h) for 30 minutes, then flat again.
  const depths = [...Array<number>(20).fill(50), ...Array.from({ length: 30 }, (_, i) => 50 + 100 * (i + 1)), ...Array<number>(30).fill(3050)];
  const { alerts, last } = run(depths);
  // 100 more in the window is 400/h: below the floor; 200 (the climb's second minute) is 800/h.
  // The episode ends when the window's growth is at most half the floor: a full window after the climb.
  assert.deepEqual(alerts, ['alarm growth @21', 'recovered growth @64']);
  assert.equal(last.state.alarm, undefined);
  assert.equal(last.status.growthPerHour, 0);
});

test('queue growth: the alarm says how fast, against what, and where to look', () => {
  const depths = [...Array<number>(16).fill(0), ...Array.from({ length: 10 }, (_, i) => 200 * (i + 1))];
  const s = GuardSchema.parse({}).queueGrowth;
  let state = initialGrowth();
  let alarm: GrowthStep['alert'];
  depths.forEach((messages, i) => {
    const step = judgeGrowth(state, { at: i * MIN, messages, held: 7 }, s);
    state = step.state;
    alarm ??= step.alert;
  });
  assert.ok(alarm);
  assert.equal(alarm.name, 'queue-growth');
  assert.match(alarm.reason, /^QUEUE GROWING: the queue grew by 800 messages an hour over the last 15m \(usually 0\/h; alarm above 500\/h\), to 200 messages$/);
  assert.equal(alarm.figures.held, 7);
  assert.match(String(alarm.figures.see), /mailward queue list --summary/);
});

test('queue growth: a busy installation\'s usual growth raises the bar to factor × baseline', () => {
  // Three days of steady growth at 400/h (under the floor: no alarm) teach the baseline …
  const steady = Array.from({ length: 3 * 24 * 60 }, (_, i) => Math.round((400 * i) / 60));
  const learnt = run(steady, { ceiling: 10_000_000 });
  assert.deepEqual(learnt.alerts, []);
  // (from 0, three half-lives of 24 h: 7/8 of the way, 350/h)
  const b = learnt.last.status.baselinePerHour;
  assert.ok(b > 340 && b < 360, `baseline ${b}`);
  assert.ok(learnt.last.status.alarmAbovePerHour > 1700);
  // … then 1,500/h is above the floor yet under 5× the baseline: no alarm; 6,000/h is one.
  const base = steady[steady.length - 1]!;
  const at1500 = run(Array.from({ length: 30 }, (_, i) => base + 25 * i), { ceiling: 10_000_000 }, learnt.last.state);
  assert.deepEqual(at1500.alerts, []);
  const at6000 = run(Array.from({ length: 30 }, (_, i) => base + 100 * i), { ceiling: 10_000_000 }, learnt.last.state);
  assert.deepEqual(at6000.alerts.map((a) => a.split(' @')[0]), ['alarm growth']);
});

test('queue growth: the ceiling alarms however slow the climb; the episode ends below 90% of it', () => {
  // +1 a minute from 9,990: far below the floor, but the 10,000th message is the ceiling.
  const { alerts } = run([...Array.from({ length: 20 }, (_, i) => 9990 + i), 9500, 8999]);
  assert.deepEqual(alerts, ['alarm ceiling @10', 'recovered ceiling @21']);
});

test('queue growth: no judgement of growth before a full window is sampled (a start is no climb)', () => {
  assert.deepEqual(run([0, 400, 800, 1200]).alerts, []);
});

test('queue growth: a window shorter than the interval is refused, naming the setting and the fix', () => {
  assert.throws(
    () => guardSettings({ 'outbound-guard': { queueGrowth: { interval: '5m', window: '1m' } } }),
    (e: Error) => /checks\.outbound-guard\.queueGrowth\.window/.test(e.message) && /shorter than interval/.test(e.message),
  );
});
