// The explicit map of every check by name (no registration by import side effects), and the
// compiler that turns the config's ordered lists into placed, option-compiled checks at load.
import { ConfigError, pathText, showValue, type ConfigProblem } from '../config/errors.ts';
import type { Config } from '../config/load.ts';
import { entryCheck, entryTimeout, STAGES, type Stage } from '../config/schema.ts';
import type { CheckDefinition, CheckEnv, StageHandlers } from './check.ts';
import type { PlacedCheck } from './runner.ts';

export type Registry = ReadonlyMap<string, CheckDefinition>;

export function createRegistry(defs: readonly CheckDefinition[]): Registry {
  return new Map(defs.map((d) => [d.name, d]));
}

export type CompiledPipeline = ReadonlyMap<string, Readonly<Record<Stage, readonly PlacedCheck[]>>>;

/** Validates every check's options and placement; builds each check once; returns lists per listener. */
export function compilePipeline(config: Config, registry: Registry, env: CheckEnv): CompiledPipeline {
  const problems: ConfigProblem[] = [];
  const known = [...registry.keys()].join(', ');
  for (const name of Object.keys(config.checks)) {
    if (!registry.has(name)) problems.push({ path: `checks.${name}`, message: `there is no check named "${name}"`, fix: `use one of: ${known}` });
  }
  const used = new Set<string>();
  const placements: Array<{ listener: string; stage: Stage; name: string; mode: 'enforce' | 'warn'; timeoutMs: number; path: string }> = [];
  for (const l of config.listeners) {
    for (const stage of STAGES) {
      l.pipeline[stage].forEach((entry, i) => {
        const name = entryCheck(entry);
        const path = `pipeline.${stage}[${i}] (listener ${l.name})`;
        const def = registry.get(name);
        if (!def) {
          problems.push({ path, message: `there is no check named ${showValue(name)}`, fix: `use one of: ${known}` });
          return;
        }
        if (!def.stages.includes(stage)) {
          problems.push({ path, message: `check "${name}" does not work at the ${stage} stage`, fix: `place it in: ${def.stages.join(', ')}` });
          return;
        }
        used.add(name);
        const mode = typeof entry === 'string' ? 'enforce' : entry.mode;
        const timeoutMs = entryTimeout(entry, config.checkTimeoutMs);
        placements.push({ listener: l.name, stage, name, mode, timeoutMs, path });
      });
    }
  }
  const instances = new Map<string, { def: CheckDefinition; handlers: StageHandlers }>();
  for (const name of used) {
    const def = registry.get(name)!;
    const parsed = (def.options).safeParse(config.checks[name] ?? {}, { reportInput: true });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const p = pathText(['checks', name, ...issue.path]);
        const input = (issue as { input?: unknown }).input;
        problems.push({ path: p, message: `${issue.message} (got ${showValue(input)})`, fix: `see the "${name}" check in examples/mailward.yaml` });
      }
      continue;
    }
    try {
      instances.set(name, { def, handlers: def.create(parsed.data, env) });
    } catch (err) {
      // A check refuses options it cannot use (a missing map file, a bad network) when it is
      // built; its message names the setting and the fix, which we keep.
      const text = err instanceof Error ? err.message : String(err);
      const m = /^(checks\.[^:]+): (.*?)\.? Fix: (.*)$/s.exec(text);
      problems.push(m ? { path: m[1]!, message: m[2]!, fix: m[3]!.replace(/\.$/, '') } : { path: `checks.${name}`, message: text, fix: `see the "${name}" check in examples/mailward.yaml` });
    }
  }
  if (problems.length > 0) throw new ConfigError(config.source, problems);
  const out = new Map<string, Record<Stage, PlacedCheck[]>>();
  for (const l of config.listeners) out.set(l.name, { connect: [], helo: [], mail: [], rcpt: [], data: [] });
  for (const p of placements) {
    const inst = instances.get(p.name)!;
    out.get(p.listener)![p.stage].push({ name: p.name, mode: p.mode, timeoutMs: p.timeoutMs, canPermit: inst.def.canPermit === true, handlers: inst.handlers });
  }
  return out;
}
