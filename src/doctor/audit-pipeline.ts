// The part of `mailward doctor` that reads the check lists: a guard check (outbound-guard,
// rate-limit) placed after a check that may permit never runs for what that check permits —
// permit-login ends the list for every logged-in client, so a stolen login would meet no breaker;
// and a rate-limit rule whose stage list lacks the rate-limit check is never applied.
import type { Config, ListenerConfig } from '../config/load.ts';
import { rateLimitSettings, type RuleCount } from '../config/guard-schema.ts';
import { entryCheck, type PipelineEntry, type Stage } from '../config/schema.ts';
import { ALL_CHECKS } from '../checks/index.ts';
import { parseAction } from '../checks/lib/access-map.ts';
import type { Finding } from './finding.ts';

const GUARD_CHECKS = ['outbound-guard', 'rate-limit'] as const;
type GuardCheck = (typeof GUARD_CHECKS)[number];

// What the rate-limit check counts at each stage it runs in.
const COUNTED: Partial<Record<Stage, RuleCount>> = { connect: 'connections', rcpt: 'recipients', data: 'messages' };

const DEFINITIONS = new Map(ALL_CHECKS.map((d) => [d.name, d]));
const q = (s: string): string => JSON.stringify(s);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Who a permitting check lets through, for the message. */
function permitted(check: string): string {
  if (check === 'permit-login') return 'every logged-in client';
  const what: Record<string, string> = { 'client-access': 'client', 'helo-access': 'HELO name', 'sender-access': 'sender', 'recipient-access': 'recipient' };
  return `every ${what[check] ?? 'case'} checks.${check} answers ok`;
}

/**
 * Whether a check placed at `stage` of listener `l` can answer permit there: declared able to,
 * enforced (a warn-only permit is only logged), and with something to permit — permit-login only
 * where clients can log in; an access map only with an ok entry or a file (read at run time).
 */
function mayPermit(config: Config, l: ListenerConfig, stage: Stage, e: PipelineEntry): boolean {
  const name = entryCheck(e);
  const def = DEFINITIONS.get(name);
  if (!def?.canPermit || !def.stages.includes(stage)) return false;
  if (typeof e !== 'string' && e.mode === 'warn') return false;
  if (name === 'permit-login') return l.auth;
  const opts = config.checks[name];
  if (!isObj(opts)) return false;
  if (typeof opts.file === 'string') return true;
  const entries = isObj(opts.entries) ? Object.values(opts.entries) : [];
  return entries.some((a) => {
    const action = typeof a === 'string' ? parseAction(a) : undefined;
    return typeof action === 'object' && action.kind === 'ok';
  });
}

/** Whether the guard check has work at this stage on this listener. */
function guards(config: Config, l: ListenerConfig, stage: Stage, check: GuardCheck): boolean {
  if (!DEFINITIONS.get(check)?.stages.includes(stage)) return false;
  if (check === 'outbound-guard') return true;
  const count = COUNTED[stage];
  let rules;
  try {
    rules = rateLimitSettings(config.checks, config.source).rules;
  } catch {
    return true; // bad options are reported when the config loads; assume the worst here
  }
  return rules.some((r) => r.count === count && (!r.listeners || r.listeners.includes(l.name)));
}

const CONSEQUENCE: Record<GuardCheck, (stage: Stage) => string> = {
  'outbound-guard': () => 'the outbound breakers never count or stop their relayed recipients',
  'rate-limit': (stage) => `no rate limit counts their ${COUNTED[stage] ?? 'mail'}`,
};

interface Problem {
  readonly listener: ListenerConfig;
  readonly stage: Stage;
  readonly check: GuardCheck;
  readonly permitter: string;
  /** Where the permitting check stands in the list. */
  readonly at: number;
  readonly list: readonly PipelineEntry[];
}

/** The list with every guard check that stood after the first permitting check moved just before it. */
function reordered(list: readonly PipelineEntry[], at: number): string {
  const names = list.map(entryCheck);
  const moved = names.slice(at).filter((n) => (GUARD_CHECKS as readonly string[]).includes(n));
  const rest = names.filter((n, i) => i < at || !(GUARD_CHECKS as readonly string[]).includes(n));
  rest.splice(at, 0, ...moved);
  return `[${rest.join(', ')}]`;
}

export function auditGuardPlacement(config: Config): Finding[] {
  const problems: Problem[] = [];
  for (const l of config.listeners) {
    for (const [stage, list] of Object.entries(l.pipeline) as Array<[Stage, readonly PipelineEntry[]]>) {
      const first = list.findIndex((e) => mayPermit(config, l, stage, e));
      if (first < 0) continue;
      for (const e of list.slice(first + 1)) {
        const check = entryCheck(e) as GuardCheck;
        if ((GUARD_CHECKS as readonly string[]).includes(check) && guards(config, l, stage, check)) problems.push({ listener: l, stage, check, permitter: entryCheck(list[first]!), at: first, list });
      }
    }
  }
  // One finding per list: the global pipeline when every listener has the same list there (the
  // config no longer tells which inherited it), else each listener's own.
  const out: Finding[] = [];
  const done = new Set<string>();
  for (const p of problems) {
    const shared = config.listeners.every((l) => JSON.stringify(l.pipeline[p.stage]) === JSON.stringify(p.list));
    const setting = shared ? `pipeline.${p.stage}` : `listeners.${p.listener.name}.pipeline.${p.stage}`;
    if (done.has(`${setting} ${p.check}`)) continue;
    done.add(`${setting} ${p.check}`);
    const on = problems.filter((x) => x.check === p.check && x.stage === p.stage && (shared ? JSON.stringify(x.list) === JSON.stringify(p.list) : x.listener === p.listener)).map((x) => q(x.listener.name));
    out.push({
      id: 'guard-after-permit',
      severity: 'error',
      setting,
      message: `${p.check} stands after ${p.permitter} in the ${p.stage} list of listener${on.length > 1 ? 's' : ''} ${on.join(', ')}: ${p.permitter} ends the list for ${permitted(p.permitter)}, so ${CONSEQUENCE[p.check](p.stage)}`,
      fix: `move ${p.check} before ${p.permitter} in ${setting}, e.g. ${setting}: ${reordered(p.list, p.at)}`,
    });
  }
  out.push(...auditRateLimitPlacement(config));
  return out;
}

// Where each kind of rule is counted: the stage whose list must hold rate-limit.
const STAGE_OF: Partial<Record<RuleCount, Stage>> = { connections: 'connect', messages: 'data' };

/**
 * The list with rate-limit added where the default lists have it: first at connect (before any
 * DNS lookup), right after sender-login at data (a refused message uses up no limit) — and never
 * after a check that may permit on one of `on`, which would end the list before it.
 */
function withRateLimit(config: Config, on: readonly ListenerConfig[], stage: Stage, list: readonly PipelineEntry[]): string {
  const names = list.map(entryCheck);
  let at = stage === 'data' ? names.indexOf('sender-login') + 1 : 0;
  const permits = on.map((l) => list.findIndex((e) => mayPermit(config, l, stage, e))).filter((i) => i >= 0);
  if (permits.length > 0) at = Math.min(at, ...permits);
  names.splice(at, 0, 'rate-limit');
  return `[${names.join(', ')}]`;
}

/**
 * A rule counting connections or messages does nothing on a listener whose connect or data list
 * lacks rate-limit (an operator who writes their own lists drops the default placement): the
 * limit the operator wrote is silently never applied there.
 */
export function auditRateLimitPlacement(config: Config): Finding[] {
  let rules;
  try {
    rules = rateLimitSettings(config.checks, config.source).rules;
  } catch {
    return []; // bad options are reported when the config loads
  }
  const runs = (l: ListenerConfig, stage: Stage): boolean => l.pipeline[stage].some((e) => entryCheck(e) === 'rate-limit');
  const out: Finding[] = [];
  rules.forEach((rule, i) => {
    const stage = STAGE_OF[rule.count];
    if (!stage) return;
    const missing = config.listeners.filter((l) => (!rule.listeners || rule.listeners.includes(l.name)) && !runs(l, stage));
    // One finding per list to change: the global one when every listener has the same list at
    // this stage (the config no longer tells which inherited it), else each listener's own.
    const done = new Set<string>();
    for (const l of missing) {
      const list = l.pipeline[stage];
      const shared = config.listeners.every((x) => JSON.stringify(x.pipeline[stage]) === JSON.stringify(list));
      const setting = shared ? `pipeline.${stage}` : `listeners.${l.name}.pipeline.${stage}`;
      if (done.has(setting)) continue;
      done.add(setting);
      const group = shared ? missing : [l];
      const on = group.map((x) => q(x.name));
      out.push({
        id: 'rate-limit-not-run',
        severity: 'warning',
        setting,
        message: `rule ${q(rule.name)} (checks.rate-limit.rules[${i}]) counts ${rule.count}, but the ${stage} list of listener${on.length > 1 ? 's' : ''} ${on.join(', ')} does not run rate-limit, so the rule never counts or limits ${rule.count} there`,
        fix: `add rate-limit to ${setting}, e.g. ${setting}: ${withRateLimit(config, group, stage, list)}`,
      });
    }
  });
  return out;
}
