// Runs one stage's ordered check list and folds the answers into one outcome: the first
// decisive verdict wins (Postfix's rule), scores add up, a check that throws or runs past its
// deadline becomes a 4xx defer — never a pass. Warn-only placements log and go on.
import { Replies } from '../core/reply.ts';
import { PASS, type Verdict, type VerdictTag } from '../core/verdict.ts';
import type { Logger } from '../observe/log.ts';
import type { CheckContext, Stage, StageHandlers } from './check.ts';

export interface PlacedCheck {
  readonly name: string;
  readonly mode: 'enforce' | 'warn';
  readonly timeoutMs: number;
  readonly canPermit: boolean;
  readonly handlers: StageHandlers;
}

export interface StageOutcome {
  /** The deciding verdict, or pass when no check was decisive. */
  readonly verdict: Verdict;
  /** The check that gave the deciding verdict. */
  readonly check?: string;
  readonly score: number;
  /** Names of score rules that fired, with their points. */
  readonly rules: readonly string[];
  readonly headers: readonly string[];
  /** Tags from pass and score verdicts (e.g. auth-failed), each once. */
  readonly tags: readonly VerdictTag[];
}

export type Invoke = (h: StageHandlers, ctx: CheckContext) => Promise<Verdict> | undefined;

class DeadlineError extends Error {}

/** Runs `invoke` for each placed check in order. `invoke` returns undefined when a check has no handler for this stage. */
export async function runStage(
  stage: Stage,
  checks: readonly PlacedCheck[],
  base: Omit<CheckContext, 'signal'>,
  invoke: Invoke,
  log: Logger,
  clientSignal?: AbortSignal,
): Promise<StageOutcome> {
  let score = 0;
  const rules: string[] = [];
  const headers: string[] = [];
  const tags: VerdictTag[] = [];
  for (const c of checks) {
    const verdict = await runOne(c, stage, base, invoke, log, clientSignal);
    if (verdict === undefined) continue;
    if (verdict.kind === 'pass' || verdict.kind === 'score') {
      if (verdict.headers) headers.push(...verdict.headers);
      for (const t of verdict.tags ?? []) if (!tags.includes(t)) tags.push(t);
      if (verdict.kind === 'score') {
        score += verdict.points;
        rules.push(`${verdict.rule}=${verdict.points}`);
      }
      continue;
    }
    if (verdict.kind === 'permit' && !c.canPermit) {
      log.warn({ check: c.name, stage }, 'check answered permit but is not declared able to permit; treated as pass');
      continue;
    }
    if (c.mode === 'warn') {
      log.info({ event: 'warn-only', check: c.name, stage, verdict: verdict.kind, reason: 'reason' in verdict ? verdict.reason : undefined }, 'warn-only check would have decided');
      continue;
    }
    return { verdict, check: c.name, score, rules, headers, tags };
  }
  return { verdict: PASS, score, rules, headers, tags };
}

async function runOne(
  c: PlacedCheck,
  stage: Stage,
  base: Omit<CheckContext, 'signal'>,
  invoke: Invoke,
  log: Logger,
  clientSignal?: AbortSignal,
): Promise<Verdict | undefined> {
  const deadline = new AbortController();
  const signal = clientSignal ? AbortSignal.any([deadline.signal, clientSignal]) : deadline.signal;
  let timer: NodeJS.Timeout | undefined;
  try {
    const pending = invoke(c.handlers, { ...base, signal });
    if (pending === undefined) return undefined;
    const timeout = new Promise<never>((_, rejectTimeout) => {
      timer = setTimeout(() => {
        deadline.abort();
        rejectTimeout(new DeadlineError(`no answer within ${c.timeoutMs} ms`));
      }, c.timeoutMs);
    });
    return await Promise.race([pending, timeout]);
  } catch (err) {
    // In doubt, defer: an error or a time-out is never a pass.
    const detail = err instanceof Error ? err.message : String(err);
    log.warn({ event: 'check-failed', check: c.name, stage, err: detail, timeout: err instanceof DeadlineError }, 'check failed; deferring');
    if (c.mode === 'warn') return undefined;
    return { kind: 'defer', reply: Replies.checkFailed, reason: `check ${c.name} failed: ${detail}` };
  } finally {
    if (timer) clearTimeout(timer);
  }
}
