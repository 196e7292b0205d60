// The content filter at end of DATA: scores the message (Bayes + rules, src/spam), answers a
// `score` verdict named after the rules that fired, and auto-learns very clear cases. The session
// adds up every check's points, writes X-Spam-Score/Status from that total and acts on it
// (subject prefix, Junk folder, quarantine) with the thresholds here: contentThresholds().
import { z } from 'zod';
import { score } from '../core/verdict.ts';
import { defineCheck } from '../pipeline/check.ts';
import { AnalysisPool } from '../spam/analysis-pool.ts';
import { SpamFilter } from '../spam/filter.ts';

const Autolearn = z
  .object({
    /** Learned as spam at or above this score. */
    spamAbove: z.number().default(10),
    /** Learned as ham at or below this score. */
    hamBelow: z.number().default(-1.5),
  })
  .strict();

export const SpamOptions = z
  .object({
    /** X-Spam-Score and X-Spam-Status are added at or above this total score (default: always). */
    tag: z.number().default(-999),
    /** Spam at or above this score: subject prefix, delivered to Junk. */
    spam: z.number().default(5.0),
    /** Not delivered at or above this score: quarantined, never bounced. */
    kill: z.number().default(10.0),
    subjectPrefix: z.string().max(100).default('*****SPAM*****'),
    /** Learn messages scoring very high as spam and very low as ham; false to learn by hand only. */
    autolearn: z.union([z.literal(false), Autolearn]).default({ spamAbove: 10, hamBelow: -1.5 }),
    /** Bytes of each message read for scoring (the rest is mostly attachments). */
    maxBytes: z.number().int().min(16 * 1024).max(64 * 1024 * 1024).default(512 * 1024),
    /** Worker threads that read messages (MIME, tokens, rules) off the event loop; 0 reads them
     * on the main thread. Started at the first message. */
    workers: z.number().int().min(0).max(32).default(1),
    /** Days a quarantined (kill-level) message is kept for `mailward quarantine` before it is deleted. */
    quarantineDays: z.number().int().min(1).max(3650).default(30),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.kill <= o.spam) {
      ctx.addIssue({ code: 'custom', path: ['kill'], message: `kill (${o.kill}) must be above spam (${o.spam}); e.g. spam: 5.0, kill: 10.0`, input: o.kill });
    }
    if (o.autolearn !== false && o.autolearn.hamBelow >= o.spam) {
      ctx.addIssue({ code: 'custom', path: ['autolearn', 'hamBelow'], message: `hamBelow (${o.autolearn.hamBelow}) must be below spam (${o.spam}), or spam would be learned as ham`, input: o.autolearn.hamBelow });
    }
    if (o.autolearn !== false && o.autolearn.spamAbove < o.spam) {
      ctx.addIssue({ code: 'custom', path: ['autolearn', 'spamAbove'], message: `spamAbove (${o.autolearn.spamAbove}) must not be below spam (${o.spam}), or ham would be learned as spam`, input: o.autolearn.spamAbove });
    }
  });

export type SpamCheckOptions = z.output<typeof SpamOptions>;

export const spam = defineCheck({
  name: 'spam',
  stages: ['data'],
  options: SpamOptions,
  create: (opts, env) => {
    let filter: SpamFilter | undefined;
    const filterFor = (): SpamFilter => {
      const pool = opts.workers > 0 ? new AnalysisPool({ size: opts.workers, maxBytes: opts.maxBytes }) : undefined;
      return (filter ??= new SpamFilter({ store: env.store, ourDomains: env.domains, clock: env.clock, maxBytes: opts.maxBytes, ...(pool ? { pool } : {}) }));
    };
    return {
      data: async (ctx, message) => {
        const f = filter ?? filterFor();
        const a = await f.analyzeAsync(await message.raw(), { authenticated: ctx.session.login !== undefined });
        // A store outage rejects here and the runner defers the message (4xx): never a pass.
        const r = await f.scoreAnalysis(a);
        let learned: 'spam' | 'ham' | 'no' | 'failed' = 'no';
        const auto = opts.autolearn;
        if (auto !== false && (r.score >= auto.spamAbove || r.score <= auto.hamBelow)) {
          const as = r.score >= auto.spamAbove ? 'spam' : 'ham';
          try {
            if ((await f.learnAnalysis(a, as)) !== 'already') learned = as;
          } catch (err) {
            // Learning is a bonus: the message itself is scored and goes on.
            learned = 'failed';
            env.log.warn({ check: 'spam', session: ctx.session.id, err: err instanceof Error ? err.message : String(err) }, 'spam auto-learning failed');
          }
        }
        const tests = r.hits.map((h) => h.name).join(',');
        // The verdict itself (X-Spam-Status) is the session's, from the total of all checks;
        // what was learned is only told here.
        const headers = learned === 'spam' || learned === 'ham' ? [`X-Spam-Autolearn: ${learned}`] : undefined;
        return score(r.score, `spam(${tests})`, headers);
      },
    };
  },
});
