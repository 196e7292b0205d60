// Turns `policyd.pipeline` into placed, option-compiled checks per protocol state. Placement
// (which check fits which state) is checked here with policyd.* paths; the checks themselves are
// built by the server's compilePipeline, so options are validated and each check exists once.
import { ConfigError, showValue, type ConfigProblem } from '../config/errors.ts';
import type { Config, ListenerConfig } from '../config/load.ts';
import { POLICY_LISTS, type PolicydConfig, type PolicyList } from '../config/policyd-schema.ts';
import { entryCheck, STAGES, type PipelineEntry, type Stage } from '../config/schema.ts';
import type { CheckEnv, StageHandlers } from '../pipeline/check.ts';
import { compilePipeline, type Registry } from '../pipeline/registry.ts';
import type { PlacedCheck } from '../pipeline/runner.ts';
import { CONTENT_CHECKS, stageFor } from './states.ts';

export interface StateChecks {
  readonly checks: readonly PlacedCheck[];
  /** The stage each placed check runs at in this state. */
  readonly stageOf: ReadonlyMap<StageHandlers, Stage>;
}

export type CompiledPolicy = ReadonlyMap<PolicyList, StateChecks>;

const emptyStages = (): Record<Stage, PipelineEntry[]> => ({ connect: [], helo: [], mail: [], rcpt: [], data: [] });

export function compilePolicyPipeline(config: Config, pipeline: PolicydConfig['pipeline'], registry: Registry, env: CheckEnv): CompiledPolicy {
  const problems: ConfigProblem[] = [];
  const known = [...registry.keys()].join(', ');
  const placed: Array<{ list: PolicyList; stages: Stage[]; byStage: Record<Stage, PipelineEntry[]> }> = [];
  for (const list of POLICY_LISTS) {
    const entries = pipeline[list] ?? [];
    const byStage = emptyStages();
    const stages: Stage[] = [];
    entries.forEach((entry, i) => {
      const name = entryCheck(entry);
      const path = `policyd.pipeline.${list}[${i}]`;
      const def = registry.get(name);
      if (!def) {
        problems.push({ path, message: `there is no check named ${showValue(name)}`, fix: `use one of: ${known}` });
        return;
      }
      if (list === 'END-OF-MESSAGE' && CONTENT_CHECKS.has(name)) {
        problems.push({ path, message: `check "${name}" reads the message content, which Postfix does not send to a policy service`, fix: 'remove it here; run it as a milter or in Mailward\'s own server' });
        return;
      }
      const stage = stageFor(list, def.stages);
      if (stage === undefined) {
        const fits = POLICY_LISTS.filter((l) => stageFor(l, def.stages) !== undefined && !(l === 'END-OF-MESSAGE' && CONTENT_CHECKS.has(name)));
        problems.push({
          path,
          message: `check "${name}" does not work at protocol state ${list} (it serves the ${def.stages.join(', ')} stage${def.stages.length > 1 ? 's' : ''})`,
          fix: fits.length > 0 ? `place it under: ${fits.join(', ')}` : 'remove it from policyd.pipeline',
        });
        return;
      }
      byStage[stage].push(entry);
      stages.push(stage);
    });
    placed.push({ list, stages, byStage });
  }
  if (problems.length > 0) throw new ConfigError(config.source, problems);

  // One listener per protocol state, its checks sorted into the stage they run at; the order
  // inside each stage is kept, so the state's own order is rebuilt below from `stages`.
  const template = config.listeners[0] ?? FALLBACK_LISTENER;
  const listeners: ListenerConfig[] = placed.map((p) => ({ ...template, name: `policyd:${p.list}`, pipeline: p.byStage }));
  const compiled = compilePipeline({ ...config, listeners }, registry, env);

  const out = new Map<PolicyList, StateChecks>();
  for (const p of placed) {
    const perStage = compiled.get(`policyd:${p.list}`);
    const next: Record<Stage, number> = { connect: 0, helo: 0, mail: 0, rcpt: 0, data: 0 };
    const checks: PlacedCheck[] = [];
    const stageOf = new Map<StageHandlers, Stage>();
    for (const stage of p.stages) {
      const c = perStage?.[stage][next[stage]++];
      if (!c) throw new Error(`internal: the compiled ${stage} list of ${p.list} is shorter than its placements`);
      checks.push(c);
      stageOf.set(c.handlers, stage);
    }
    out.set(p.list, { checks, stageOf });
  }
  return out;
}

// Only name and pipeline are read by compilePipeline; the rest fills the type.
const FALLBACK_LISTENER: ListenerConfig = {
  name: 'policyd',
  kind: 'mx',
  host: '127.0.0.1',
  port: 0,
  implicitTls: false,
  starttls: false,
  auth: false,
  requireAuth: false,
  requireTls: false,
  advertiseRequireTls: false,
  greetingDelayMs: 0,
  proxyTrusted: [],
  pipeline: Object.fromEntries(STAGES.map((s) => [s, []])) as unknown as Record<Stage, PipelineEntry[]>,
};

/** The checks and the stage they run at, for a log line at start. */
export function describePolicy(p: CompiledPolicy): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [list, s] of p) if (s.checks.length > 0) out[list] = s.checks.map((c) => `${c.name}@${s.stageOf.get(c.handlers) ?? '?'}`);
  return out;
}
