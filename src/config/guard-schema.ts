// The settings of the outbound guard: rate-limit rules (options of the `rate-limit` check) and
// quotas, breakers and alerts (options of the `outbound-guard` check, also read by the guarded
// transport and `mailward guard`). Safe defaults: an operator who configures nothing is protected.
import { z } from 'zod';
import { isNetworkProblem, readNetwork } from '../core/net.ts';
import { Duration } from './units.ts';
import { ConfigError, pathText, showValue } from './errors.ts';

const HOUR = 3_600_000;

/** A share of a limit: 0.8 or "80%". */
export const Fraction = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = typeof v === 'number' ? v : /^\s*\d+(?:\.\d+)?\s*%\s*$/.test(v) ? Number(v.replace('%', '').trim()) / 100 : NaN;
  if (!(n > 0 && n <= 1)) {
    ctx.addIssue({ code: 'custom', input: v, message: `${JSON.stringify(v)} is not a share of the limit (write a number above 0 and at most 1, or a percentage such as "80%")`, params: { fix: 'write a number above 0 and at most 1, or a percentage such as "80%"' } });
    return z.NEVER;
  }
  return n;
});

export const RULE_KEYS = ['client', 'network', 'login', 'sender', 'recipient-domain', 'server'] as const;
export type RuleKey = (typeof RULE_KEYS)[number];
export const RULE_COUNTS = ['connections', 'messages', 'recipients'] as const;
export type RuleCount = (typeof RULE_COUNTS)[number];

/** Which keys exist when a thing is counted: no login or sender is known at connect. */
export const KEYS_FOR: Record<RuleCount, readonly RuleKey[]> = {
  connections: ['client', 'network', 'server'],
  messages: ['client', 'network', 'login', 'sender', 'server'],
  recipients: RULE_KEYS,
};

const NAME_RE = /^[a-z0-9][a-z0-9-]*$/;

const RuleInput = z
  .object({
    /** Shown in logs and `mailward guard status`; default e.g. "login-outbound-recipients-1h". */
    name: z.string().regex(NAME_RE, 'rule names are lower-case words with dashes, e.g. "login-hour"').optional(),
    /** What is counted: connections (connect stage), messages (end of DATA) or recipients (RCPT). */
    count: z.enum(RULE_COUNTS).default('recipients'),
    /** Whose count: the client address, its network (IPv4 /24, IPv6 /64), the login, the envelope
     *  sender, the recipient's domain, or the whole server. */
    key: z.enum(RULE_KEYS),
    /** inbound: recipients in our domains; outbound: relayed recipients (other domains); any. */
    direction: z.enum(['inbound', 'outbound', 'any']).default('any'),
    window: Duration,
    limit: z.number().int().min(1),
    /** Log a warning when the count reaches this share of the limit (once per window). */
    warnAt: Fraction.optional(),
    /** Only on these listeners (names from `listeners`); default: wherever the check is placed. */
    listeners: z.array(z.string().min(1)).optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (!KEYS_FOR[r.count].includes(r.key)) {
      ctx.addIssue({ code: 'custom', path: ['key'], input: r.key, message: `key "${r.key}" is not known when ${r.count} are counted (use one of: ${KEYS_FOR[r.count].join(', ')})`, params: { fix: `use one of: ${KEYS_FOR[r.count].join(', ')}` } });
    }
    if (r.count === 'connections' && r.direction !== 'any') {
      ctx.addIssue({ code: 'custom', path: ['direction'], input: r.direction, message: 'a connection has no direction yet (remove direction, or count messages or recipients)', params: { fix: 'remove direction, or count messages or recipients' } });
    }
    if (r.window < 1000) {
      ctx.addIssue({ code: 'custom', path: ['window'], input: r.window, message: `a window of ${r.window} ms is too short to count across nodes (use at least "1s")`, params: { fix: 'use at least "1s"' } });
    }
  });

export function windowText(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', HOUR], ['m', 60_000], ['s', 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export const RuleSchema = RuleInput.transform((r) => ({ ...r, name: r.name ?? `${r.key}-${r.direction}-${r.count}-${windowText(r.window)}` }));
export type RateRule = z.output<typeof RuleSchema>;

/**
 * Safe defaults: the ceiling of any login, however high its baseline — 200 relayed recipients an
 * hour and 1,000 a day (warning at 80%). A new login meets the baseline breaker first, at
 * `baseline.minimum` (100) in its first hour (docs/decisions/0024-aggregate-breaker.md).
 * An operator who lists rules replaces these.
 */
export const DEFAULT_RULES: ReadonlyArray<z.input<typeof RuleSchema>> = [
  { name: 'login-hour', key: 'login', direction: 'outbound', window: '1h', limit: 200 },
  { name: 'login-day', key: 'login', direction: 'outbound', window: '1d', limit: 1000, warnAt: 0.8 },
];

/** Options of the `rate-limit` check (`checks.rate-limit`). */
export const RateLimitSchema = z
  .object({
    rules: z.array(RuleSchema).default(() => DEFAULT_RULES.map((r) => RuleSchema.parse(r))),
  })
  .strict()
  .superRefine((o, ctx) => {
    const seen = new Set<string>();
    o.rules.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], input: r.name, message: `two rules are named "${r.name}" (give each rule its own name)`, params: { fix: 'give each rule its own name' } });
      seen.add(r.name);
    });
  });
export type RateLimitSettings = z.output<typeof RateLimitSchema>;

export const SOURCE_KINDS = ['login', 'sender', 'client'] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

const SOURCE_RE = /^(login|sender|client):.+$/;

/** Options of the `outbound-guard` check (`checks.outbound-guard`): breakers, quota and alerts. */
export const GuardSchema = z
  .object({
    /** A source (login, envelope sender, client) relaying far above its own recent hourly rate. */
    baseline: z
      .object({
        enabled: z.boolean().default(true),
        sources: z.array(z.enum(SOURCE_KINDS)).min(1).default(['login', 'sender', 'client']),
        /** Trip when the last hour's relayed recipients exceed factor × the source's baseline … */
        factor: z.number().gt(1).default(10),
        /** … but never below this many recipients an hour: a new source (no baseline yet) may relay
         *  exactly this many in its first hour, the next is refused and trips the breaker. */
        minimum: z.number().int().min(1).default(100),
        /** The baseline is an hourly rate averaged with this half-life (exponential weighting). */
        halfLife: Duration.default(24 * HOUR),
      })
      .strict()
      .prefault({}),
    /** A source relaying to more distinct recipient domains within one clock hour. */
    domains: z
      .object({
        enabled: z.boolean().default(true),
        limit: z.number().int().min(1).default(50),
      })
      .strict()
      .prefault({}),
    /**
     * The installation-wide breaker: all relayed mail of every non-exempt source together, each
     * figure against the installation's own baseline (factor ×) and never below its floor. N stolen
     * logins together trip it like one. Its breaker is "aggregate": new relayed mail from
     * non-exempt sources gets a 4xx at RCPT and DATA, and queued outbound mail is held.
     */
    aggregate: z
      .object({
        enabled: z.boolean().default(true),
        /** Trip when a figure of the last hour exceeds factor × its baseline (hourly, same half-life as `baseline`) … */
        factor: z.number().gt(1).default(5),
        /** … or this floor, whichever is higher: relayed recipients an hour (two new logins' budget). */
        recipients: z.number().int().min(1).default(200),
        /** Recipient domains never relayed to before (in the last 30 days) an hour. */
        newDomains: z.number().int().min(1).default(150),
        /** Permanent delivery failures (5xx from the next hop) as a share of the hour's attempts … */
        failureRate: Fraction.default(0.5),
        /** … once the hour has this many attempts (fewer say nothing about a rate). */
        failureMinimum: z.number().int().min(1).default(100),
      })
      .strict()
      .prefault({}),
    /**
     * Early warning, once per source and clock hour (alert channels, log, dashboard, metric): when
     * a source reaches `share` of a breaker's threshold, or sends `baselineFactor` × its baseline
     * (and at least `minimum` recipients that hour).
     */
    earlyWarning: z
      .object({
        enabled: z.boolean().default(true),
        share: Fraction.default(0.5),
        baselineFactor: z.number().gt(1).default(3),
        minimum: z.number().int().min(1).default(20),
      })
      .strict()
      .prefault({}),
    /** The daily digest of outbound volume per login (one alert-channel message a day, at this UTC hour). */
    digest: z
      .object({
        enabled: z.boolean().default(true),
        hour: z.number().int().min(0).max(23).default(7),
      })
      .strict()
      .prefault({}),
    /** Relayed recipients from one client whose permission came from relay.trustedNetworks, not a
     *  login (a web application, a scanner): an absolute cap; raise it for a busy application. */
    trustedNetwork: z
      .object({
        enabled: z.boolean().default(true),
        limit: z.number().int().min(1).default(300),
        window: Duration.default(HOUR),
      })
      .strict()
      .prefault({}),
    /** Bounces coming back: null-sender mail to our addresses. Past `perAddress` for one address,
     *  mail sent as that address is held; past `total` (off unless set), all outbound mail. */
    bounces: z
      .object({
        enabled: z.boolean().default(true),
        perAddress: z.number().int().min(1).default(100),
        total: z.number().int().min(1).optional(),
        window: Duration.default(HOUR),
      })
      .strict()
      .prefault({}),
    /** The global outbound quota, mirroring the smarthost's (e.g. 54000 per 24h). Off until `limit` is set. */
    quota: z
      .object({
        limit: z.number().int().min(1).optional(),
        window: Duration.default(24 * HOUR),
        /** Alert when this share of the limit is used. */
        warnAt: Fraction.default(0.8),
        /** Hold all outbound mail (and trip the global breaker) at this share: before the provider's own limit. */
        stopAt: Fraction.default(0.95),
        /** Also warn when the last hour's rate, carried over the window, would pass warnAt (off: a
         *  newsletter hour would warn every time; the budget projection below is always on). */
        project: z.boolean().default(false),
        /** The smarthost's price per 1,000 recipients (Amazon SES: 0.10 USD), for the projected cost. */
        pricePer1000: z.number().min(0).optional(),
        /** The most you will spend per window, in the currency of pricePer1000. */
        budget: z.number().min(0).optional(),
      })
      .strict()
      .superRefine((q, ctx) => {
        if (q.warnAt >= q.stopAt) ctx.addIssue({ code: 'custom', path: ['warnAt'], input: q.warnAt, message: `warnAt (${q.warnAt}) is not below stopAt (${q.stopAt}); warn before the stop, e.g. warnAt: 80%, stopAt: 95%`, params: { fix: 'warn before the stop, e.g. warnAt: 80%, stopAt: 95%' } });
      })
      .prefault({}),
    /**
     * The queue-growth alarm (guard/queue-growth.ts): the queue's depth sampled every `interval`;
     * an alarm (once per episode, then a recovery line) when its growth over `window` passes both
     * `floor` messages an hour and `factor` × its own hourly baseline, or when `ceiling` messages
     * are queued (held ones included).
     */
    queueGrowth: z
      .object({
        enabled: z.boolean().default(true),
        interval: Duration.refine((v) => v >= 100, { message: 'is shorter than 100ms', params: { fix: 'write at least "100ms"; the default is "1m"' } }).default(60_000),
        window: Duration.default(15 * 60_000),
        floor: z.number().min(1).default(500),
        factor: z.number().gt(1).default(5),
        ceiling: z.number().int().min(1).default(10_000),
        halfLife: Duration.refine((v) => v > 0, { message: 'is 0', params: { fix: 'write a duration such as "24h"' } }).default(24 * HOUR),
      })
      .strict()
      .superRefine((g, ctx) => {
        if (g.window < g.interval) ctx.addIssue({ code: 'custom', path: ['window'], input: g.window, message: `window (${g.window} ms) is shorter than interval (${g.interval} ms): growth needs two samples in a window`, params: { fix: 'make window at least a few intervals long, e.g. interval: 1m, window: 15m' } });
      })
      .prefault({}),
    /** Sources the breakers never trip for, e.g. "login:newsletter@example.org", "client:10.0.0.5". */
    exempt: z
      .array(z.string().regex(SOURCE_RE, 'a source: login:<login>, sender:<address> or client:<address>'))
      .default([])
      .superRefine((list, ctx) => {
        // A client exemption is read by the one network parser (core/net.ts): "client:127.1" or a
        // range would otherwise mean something else here than in every other setting.
        list.forEach((e, i) => {
          if (!/^client:/i.test(e)) return;
          const n = readNetwork(e.slice(7));
          const full = !isNetworkProblem(n) && n.prefix === (n.family === 4 ? 32 : 128);
          if (full) return;
          const why = isNetworkProblem(n) ? n.problem : `${JSON.stringify(e.slice(7))} is a range`;
          ctx.addIssue({ code: 'custom', path: [i], input: e, message: `${why}; a client exemption is one address, e.g. client:192.0.2.10`, params: { fix: 'write one full address, e.g. client:192.0.2.10 or client:2001:db8::5' } });
        });
      }),
    /** A tripped breaker closes by itself after this long; default: it stays open until `mailward guard release`. */
    reopenAfter: Duration.optional(),
    alerts: z
      .object({
        /** An http(s) URL that receives a JSON POST for each alert (Slack-style `text` included). */
        webhook: z
          .string()
          .regex(/^https?:\/\/[^\s/]+/i, 'an http:// or https:// URL')
          .optional(),
        webhookTimeout: Duration.default(5000),
        /** Also mail each alert to the postmaster mailbox. */
        postmaster: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type GuardSettings = z.output<typeof GuardSchema>;

function parseOptions<S extends z.ZodType>(schema: S, name: string, checks: Readonly<Record<string, unknown>>, source: string): z.output<S> {
  const r = schema.safeParse(checks[name] ?? {}, { reportInput: true });
  if (r.success) return r.data;
  throw new ConfigError(
    source,
    r.error.issues.map((issue) => ({
      path: pathText(['checks', name, ...issue.path]),
      message: `${issue.message} (got ${showValue((issue as { input?: unknown }).input)})`,
      // The same fix text the pipeline compiler gives for check options (our messages carry the hint).
      fix: `see the "${name}" check in examples/mailward.yaml`,
    })),
  );
}

/**
 * The settings the guarded transport and the CLI use: the outbound-guard check's options, read
 * even when the check is in no pipeline. Throws ConfigError naming the setting.
 */
export function guardSettings(checks: Readonly<Record<string, unknown>>, source = 'config'): GuardSettings {
  return parseOptions(GuardSchema, 'outbound-guard', checks, source);
}

export function rateLimitSettings(checks: Readonly<Record<string, unknown>>, source = 'config'): RateLimitSettings {
  return parseOptions(RateLimitSchema, 'rate-limit', checks, source);
}
