// Runs one stage's ordered check list and folds the answers into one outcome: the first
// decisive verdict wins (Postfix's rule), scores add up, a check that throws or runs past its
// deadline becomes a 4xx defer — never a pass. Warn-only placements log and go on.
import { DeadlineError } from '../core/deadline.ts';
import { Outage } from '../core/outage.ts';
import { Replies } from '../core/reply.ts';
import { PASS, type Verdict, type VerdictTag } from '../core/verdict.ts';
import type { Logger } from '../observe/log.ts';
import type { Answer, CheckContext, Stage, StageHandlers } from './check.ts';

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

export type Invoke = (h: StageHandlers, ctx: CheckContext) => Answer | undefined;

/**
 * The deadlines of one stage call: one AbortController, one signal and one timer for all its
 * checks, instead of a controller, a combined signal, a timer and a DOMException per check. Each
 * check still gets its own `timeoutMs` from the moment it starts. The timer is armed for the
 * earliest deadline and, when it fires early for the check then running, re-armed for the rest.
 * The signal itself is made only when a check reads `ctx.signal`: most checks never do.
 */
class StageDeadline {
  #controller: AbortController | undefined;
  /** Why the signal is aborted (a time-out or the client going away), once it is. */
  #reason: unknown;
  readonly ctx: CheckContext;
  /** Rejects when the running check's time is up; raced against every asynchronous answer. Made at the first one. */
  #expired: Promise<never> | undefined;
  #fail!: (err: DeadlineError) => void;
  #timer: NodeJS.Timeout | undefined;
  /** performance.now() at which the armed timer fires. */
  #armedFor = Infinity;
  #check: PlacedCheck | undefined;
  #until = Infinity;
  /** Set once a check ran out of time: the signal is aborted, so later checks need a new one. */
  spent = false;
  readonly #clientSignal: AbortSignal | undefined;
  readonly #onClientGone = (): void => this.#abort(this.#clientSignal?.reason);

  constructor(base: Omit<CheckContext, 'signal'>, clientSignal: AbortSignal | undefined) {
    this.#clientSignal = clientSignal;
    const signal = (): AbortSignal => this.#signal();
    this.ctx = {
      ...base,
      get signal() {
        return signal();
      },
    };
  }

  #signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
      // The client going away aborts the running check too; a listener is cheaper than AbortSignal.any.
      else if (this.#clientSignal?.aborted) this.#controller.abort(this.#clientSignal.reason);
      else this.#clientSignal?.addEventListener('abort', this.#onClientGone, { once: true });
    }
    return this.#controller.signal;
  }

  #abort(reason: unknown): void {
    this.#reason ??= reason;
    this.#controller?.abort(reason);
  }

  /** The check `c` is waited for from now; its deadline is `c.timeoutMs` from here. Returns what to race its answer against. */
  start(c: PlacedCheck): Promise<never> {
    if (!this.#expired) {
      this.#expired = new Promise<never>((_, reject) => {
        this.#fail = reject;
      });
      this.#expired.catch(() => undefined);
    }
    const now = performance.now();
    this.#check = c;
    this.#until = now + c.timeoutMs;
    if (this.#until < this.#armedFor) this.#arm(c.timeoutMs);
    return this.#expired;
  }

  #arm(ms: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#armedFor = performance.now() + ms;
    this.#timer = setTimeout(this.#onTimer, ms);
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const left = this.#until - performance.now();
    // Armed for an earlier check: the one running now still has time.
    if (left > 0) {
      this.#arm(Math.ceil(left));
      return;
    }
    this.spent = true;
    const err = new DeadlineError(`no answer within ${this.#check?.timeoutMs ?? 0} ms`);
    this.#abort(err);
    this.#fail(err);
  };

  dispose(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#controller) this.#clientSignal?.removeEventListener('abort', this.#onClientGone);
  }
}

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
  let deadline: StageDeadline | undefined;
  try {
    for (const c of checks) {
      deadline ??= new StageDeadline(base, clientSignal);
      const answer = runOne(c, stage, deadline, invoke, log);
      // A check that answered at once costs no promise and no await here.
      const verdict = isPending(answer) ? await answer : answer;
      // After a time-out the shared signal is aborted: the checks still to run get a fresh one.
      if (deadline.spent) {
        deadline.dispose();
        deadline = undefined;
      }
      if (verdict === undefined) continue;
      if (verdict.kind === 'pass' || verdict.kind === 'score') {
        if (verdict.headers) headers.push(...verdict.headers);
        if (verdict.tags) for (const t of verdict.tags) if (!tags.includes(t)) tags.push(t);
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
  } finally {
    deadline?.dispose();
  }
  return { verdict: PASS, score, rules, headers, tags };
}

// A check that keeps failing (its DNS server or clamd is down) is told to the operator once when
// it starts and once when it answers again; each message it defers has its own `deferred` line.
const failing = new WeakMap<PlacedCheck, Outage>();

/** A promise (or other thenable) rather than an answer already given. */
function isPending<T>(x: T | Promise<T>): x is Promise<T> {
  return typeof (x as { then?: unknown } | undefined)?.then === 'function';
}

/** Asks one check; the answer comes at once when the check gave it synchronously (or threw). */
function runOne(c: PlacedCheck, stage: Stage, deadline: StageDeadline, invoke: Invoke, log: Logger): Verdict | undefined | Promise<Verdict | undefined> {
  let answer: Answer | undefined;
  try {
    answer = invoke(c.handlers, deadline.ctx);
  } catch (err) {
    return failed(c, stage, err, log);
  }
  if (answer === undefined) return undefined;
  if (isPending(answer)) return waitFor(c, stage, deadline, answer, log);
  answered(c, stage, log);
  return answer;
}

async function waitFor(c: PlacedCheck, stage: Stage, deadline: StageDeadline, pending: Promise<Verdict>, log: Logger): Promise<Verdict | undefined> {
  try {
    const verdict = await Promise.race([pending, deadline.start(c)]);
    answered(c, stage, log);
    return verdict;
  } catch (err) {
    return failed(c, stage, err, log);
  }
}

/** A check that was failing answers again: told once. */
function answered(c: PlacedCheck, stage: Stage, log: Logger): void {
  const ended = failing.get(c)?.recover();
  if (ended) log.info({ event: 'check-recovered', check: c.name, stage, downMs: ended.downMs, failures: ended.failures }, `check ${c.name} answers again after ${ended.failures} failure(s) in ${Math.round(ended.downMs / 1000)} s`);
}

function failed(c: PlacedCheck, stage: Stage, err: unknown, log: Logger): Verdict | undefined {
  // In doubt, defer: an error or a time-out is never a pass.
  const detail = err instanceof Error ? err.message : String(err);
  let outage = failing.get(c);
  if (!outage) failing.set(c, (outage = new Outage()));
  const fields = { event: 'check-failed', check: c.name, stage, err: detail, timeout: err instanceof DeadlineError };
  if (outage.fail()) log.warn(fields, `check failed; deferring (further failures of ${c.name} are logged at debug until it answers again)`);
  else log.debug(fields, 'check failed; deferring');
  if (c.mode === 'warn') return undefined;
  return { kind: 'defer', reply: Replies.checkFailed, reason: `check ${c.name} failed: ${detail}` };
}
