// `mailward guard status | release NAME | trip NAME`: the outbound guard's breakers, quota and
// rate limits with their current figures, read from the shared store the config names (works
// whether the server runs or not: the state lives in the store, not in the server). Release also
// counts the mail on hold (through the server, or in the spool) and names the commands for it.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import type { Config } from '../../config/load.ts';
import { entryCheck } from '../../config/schema.ts';
import { guardSettings, rateLimitSettings, windowText, type GuardSettings } from '../../config/guard-schema.ts';
import { withStore } from './with-store.ts';
import type { Store } from '../../store/store.ts';
import { silentLogger } from '../../observe/log.ts';
import type { Logger } from '../../observe/log.ts';
import { OutboundGuard, type GuardStatus } from '../../guard/guard.ts';
import { RateLimits, type LimitFigure } from '../../guard/limits.ts';
import { parseBreakerName } from '../../guard/sources.ts';
import { heldMailCommands, releaseCommand } from '../../guard/alerts.ts';
import { digestReason, outboundDigest, sendDigest } from '../../guard/digest.ts';
import { runQueueCommand } from '../../app/delivery.ts';
import { CliError, EXIT, configFrom } from './index.ts';

export interface GuardIo {
  out(text: string): void;
  /** Where the CLI's own log lines go (the "released" event); default: nowhere. */
  readonly log?: Logger;
  readonly clock?: () => number;
}

/** The store the server uses, from the config's `store` section. */
async function withGuard<T>(config: Config, io: GuardIo, fn: (g: OutboundGuard, limits: RateLimits, store: Store) => Promise<T>): Promise<T> {
  const log = io.log ?? silentLogger();
  return withStore(config, (store) => {
    const clock = io.clock ?? Date.now;
    const guard = new OutboundGuard({ store, clock, log, hostname: config.hostname, settings: guardSettings(config.checks, config.source) });
    const limits = new RateLimits(store, rateLimitSettings(config.checks, config.source).rules, log);
    return fn(guard, limits, store);
  });
}

const defaultIo: GuardIo = { out: (t) => void process.stdout.write(t) };

export function registerGuard(program: Command, io: GuardIo = defaultIo): void {
  const guard = program.command('guard').description('the outbound guard: rate limits, the outbound quota and circuit breakers');
  guard
    .command('status')
    .description('show every breaker and limit with its current figures')
    .option('--json', 'print the figures as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      await withGuard(config, io, async (g, limits) => {
        const status = await g.status();
        const figures = await limits.figures(status.at);
        if (opts.json) io.out(`${JSON.stringify({ ...status, limits: figures.map((f) => ({ rule: f.rule, top: f.top })) }, null, 2)}\n`);
        else io.out(formatStatus(status, figures, g.settings, placements(config)));
      });
    });
  guard
    .command('release')
    .description('reopen a breaker: "global", or a source such as login:alice@example.org (see guard status)')
    .argument('<name>', 'the breaker, as guard status shows it')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const config = configFrom(cmd);
      const canonical = parseBreakerName(name);
      if (!canonical) throw new CliError(`${JSON.stringify(name)} is not a breaker name; write "global", "aggregate", login:<login>, sender:<address> or client:<address>, as guard status shows them`, EXIT.usage);
      await withGuard(config, io, async (g) => {
        const was = await g.release(canonical);
        io.out(was ? `released ${canonical} (open since ${new Date(was.trippedAt).toISOString()}, ${was.kind}: ${was.reason})\n` : `${canonical} was not open; its recent counts were cleared\n`);
        const held = await heldCount(config);
        if (was || (typeof held === 'number' && held > 0)) io.out(heldMailText(canonical, held, was !== undefined));
      });
    });
  guard
    .command('trip')
    .description('open a breaker by hand, e.g. "global" to hold all outbound mail at once')
    .argument('<name>', '"global", or login:<login>, sender:<address>, client:<address>')
    .option('--reason <text>', 'why, for the status and the log', 'opened by hand')
    .action(async (name: string, opts: { reason: string }, cmd: Command) => {
      const config = configFrom(cmd);
      const canonical = parseBreakerName(name);
      if (!canonical) throw new CliError(`${JSON.stringify(name)} is not a breaker name; write "global", "aggregate", login:<login>, sender:<address> or client:<address>`, EXIT.usage);
      await withGuard(config, io, async (g) => {
        const fresh = await g.tripManually(canonical, opts.reason);
        io.out(fresh ? `${canonical} is open; reopen it with: ${releaseCommand(canonical)}\n` : `${canonical} was open already\n`);
      });
    });
  guard
    .command('digest')
    .description('show the outbound volume per login of the last 24 hours (the daily digest); --send sends it on the alert channels now')
    .option('--send', 'send it now: the webhook, and the postmaster mail (queued by the running server)')
    .action(async (opts: { send?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      await withGuard(config, io, async (g, _limits, store) => {
        const now = (io.clock ?? Date.now)();
        const d = opts.send ? await sendDigest(store, g.alerter, now) : await outboundDigest(store, now);
        if (opts.send) await g.alerter.idle();
        io.out([digestReason(d), ...d.logins.map((l) => `  ${l.login}  ${l.recipients}`), ...(opts.send ? ['sent on the alert channels'] : []), ''].join('\n'));
      });
    });
}

/**
 * Messages on hold (the hold/ area, whoever put them there): counted by the running server from
 * its catalog, or in the spool when none runs. A string says why they could not be counted.
 */
async function heldCount(config: Config): Promise<number | string> {
  // No spool yet: nothing was ever queued (and counting must not create one).
  if (!existsSync(config.paths.spool)) return 0;
  try {
    return (await runQueueCommand(config, { op: 'release', all: true, countOnly: true })).matched;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** After a release: the held mail stays held (it is probably the attack's); how to look at it, send it or drop it. */
export function heldMailText(name: string, held: number | string, wasOpen: boolean): string {
  const c = heldMailCommands(name);
  const count = typeof held === 'number' ? `${held} message(s) on hold` : `the messages on hold could not be counted (${held})`;
  return [
    wasOpen ? 'new outbound mail goes out again; mail held while the breaker was open stays on hold (it is probably the attack\'s):' : 'mail held earlier stays on hold:',
    `  ${count}`,
    `  look at it:     ${c.list}`,
    `  send some:      ${c.release}   (or --sender ADDRESS, or --all)`,
    `  delete it:      ${c.delete}   (or ID...)`,
    '',
  ].join('\n');
}

/** Which listeners run the guard's checks, and at which stages. */
function placements(config: Config): Map<string, string[]> {
  const out = new Map<string, string[]>([['rate-limit', []], ['outbound-guard', []]]);
  for (const l of config.listeners) {
    for (const [stage, list] of Object.entries(l.pipeline)) {
      for (const e of list) {
        const name = entryCheck(e);
        out.get(name)?.push(`${l.name}/${stage}`);
      }
    }
  }
  return out;
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const num = (n: number): string => (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(1));

/** The queue-growth alarm's line: the server's last sample against its rule. */
export function queueGrowthLine(s: GuardStatus, settings: GuardSettings): string {
  const q = settings.queueGrowth;
  if (!q.enabled) return 'off';
  const rule = `alarm above max(${num(q.floor)}/h, ${q.factor} × baseline) over ${windowText(q.window)}, or at ${num(q.ceiling)} messages`;
  const g = s.queueGrowth;
  if (!g) return `no sample yet (the running server samples every ${windowText(q.interval)}); ${rule}`;
  const rate = g.growthPerHour === undefined ? 'growth not measured yet' : `${g.growthPerHour >= 0 ? '+' : ''}${num(Math.round(g.growthPerHour))}/h`;
  const alarm = g.alarm ? `  — ALARM since ${iso(g.alarm.since)}: ${g.alarm.reason}` : '';
  return `${num(g.messages)} messages (${num(g.held)} held) at ${iso(g.at)}, ${rate}, baseline ${num(Math.round(g.baselinePerHour))}/h, alarm above ${num(Math.round(g.alarmAbovePerHour))}/h or at ${num(g.ceiling)} messages${alarm}`;
}

export function formatStatus(s: GuardStatus, limits: readonly LimitFigure[], settings: GuardSettings, placed: Map<string, string[]>): string {
  const lines: string[] = [`outbound guard at ${iso(s.at)}`, ''];
  lines.push('breakers');
  const global = s.breakers.find((b) => b.name === 'global');
  if (!global) lines.push('  global  closed (outbound mail flows)');
  for (const b of s.breakers) {
    lines.push(`  ${b.name}  OPEN since ${iso(b.trippedAt)} (${b.kind})${b.until !== undefined ? `, closes by itself at ${iso(b.until)}` : ''}`);
    lines.push(`      ${b.reason}`);
    lines.push(`      reopen: ${releaseCommand(b.name)}`);
  }
  const bl = settings.baseline;
  lines.push(
    '',
    'breaker rules',
    `  baseline        ${bl.enabled ? `trips a ${bl.sources.join('/')} above ${bl.factor} × its hourly baseline (half-life ${windowText(bl.halfLife)}), at least ${bl.minimum} recipients an hour` : 'off'}`,
    `  domains         ${settings.domains.enabled ? `trips a source above ${settings.domains.limit} distinct recipient domains in a clock hour` : 'off'}`,
    `  trusted-network ${settings.trustedNetwork.enabled ? `trips a client relaying without a login above ${settings.trustedNetwork.limit} recipients in ${windowText(settings.trustedNetwork.window)}` : 'off'}`,
    `  bounces         ${settings.bounces.enabled ? `trips a sender above ${settings.bounces.perAddress} bounces in ${windowText(settings.bounces.window)}${settings.bounces.total !== undefined ? `, all outbound above ${settings.bounces.total}` : ''}` : 'off'}`,
  );
  const ag = settings.aggregate;
  lines.push(`  aggregate       ${ag.enabled ? `trips for all non-exempt sources together above ${ag.factor} × the installation's hourly baseline, at least ${ag.recipients} recipients or ${ag.newDomains} new domains an hour, or ${Math.round(ag.failureRate * 100)}% permanent failures of ${ag.failureMinimum}+ attempts` : 'off'}`);
  if (settings.exempt.length > 0) lines.push(`  exempt          ${settings.exempt.join(', ')}`);
  lines.push('', 'quota (global outbound)');
  if (s.quota) {
    const q = s.quota;
    lines.push(`  ${num(q.used)} of ${num(q.limit)} recipients in ${windowText(q.windowMs)} (${((100 * q.used) / q.limit).toFixed(1)}%); warning at ${num(q.warn)}, hard stop at ${num(q.stop)}${q.used >= q.stop ? '  — STOPPED: remote delivery held' : ''}`);
  } else {
    lines.push('  none (set checks.outbound-guard.quota.limit to your smarthost\'s quota, e.g. 54000)');
  }
  lines.push('', 'sources relaying this hour (rate / limit, baseline, distinct domains)');
  if (s.sources.length === 0) lines.push('  none');
  for (const src of s.sources.slice(0, 20)) {
    lines.push(`  ${src.source}  ${num(src.reading.rate)} / ${num(src.reading.limit)}, baseline ${src.reading.baseline.toFixed(2)}/h, ${src.domains} domains`);
  }
  if (s.aggregate) {
    const a = s.aggregate;
    lines.push('', 'all sources together (aggregate: rate / limit, baseline)');
    lines.push(`  recipients   ${num(a.recipients.rate)} / ${num(a.recipients.limit)}, baseline ${a.recipients.baseline.toFixed(2)}/h`);
    lines.push(`  new domains  ${num(a.newDomains.rate)} / ${num(a.newDomains.limit)}, baseline ${a.newDomains.baseline.toFixed(2)}/h`);
    lines.push(`  deliveries   ${num(a.failures)} permanent failures of ${num(a.attempts)} answered attempts`);
  }
  lines.push('', 'queue growth', `  ${queueGrowthLine(s, settings)}`);
  if (s.warnings.length > 0) lines.push('', 'early warnings (this hour and the last)', ...s.warnings.slice(0, 20).map((w) => `  ${iso(w.at)}  ${w.name}  ${w.reason}`));
  if (s.trusted.length > 0) lines.push('', `trusted-network relays in ${windowText(settings.trustedNetwork.window)}`, ...s.trusted.slice(0, 10).map((x) => `  ${x.subject}  ${x.count} / ${settings.trustedNetwork.limit}`));
  if (s.bounces.length > 0) lines.push('', `bounces received in ${windowText(settings.bounces.window)}`, ...s.bounces.slice(0, 10).map((x) => `  ${x.subject}  ${x.count}`));
  lines.push('', 'rate limits');
  if (limits.length === 0) lines.push('  none');
  for (const f of limits) {
    const r = f.rule;
    lines.push(`  ${r.name}  ${r.limit} ${r.count} per ${r.key} in ${windowText(r.window)}${r.count !== 'connections' ? `, ${r.direction}` : ''}${r.listeners ? ` (listeners ${r.listeners.join(', ')})` : ''}`);
    for (const t of f.top) lines.push(`      ${t.subject}  ${num(t.count)} / ${r.limit}${t.count >= r.limit ? '  — at the limit' : ''}`);
  }
  for (const [check, where] of placed) {
    if (where.length === 0) lines.push('', `note: the ${check} check is in no pipeline, so its ${check === 'rate-limit' ? 'rules' : 'breakers'} are not applied; add it to ${check === 'rate-limit' ? 'pipeline.connect, pipeline.rcpt and pipeline.data (where the defaults have it)' : 'pipeline.rcpt'}`);
  }
  return `${lines.join('\n')}\n`;
}
