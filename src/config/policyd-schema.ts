// The `policyd` section of the config: Mailward as a Postfix policy service (SMTPD_POLICY_README)
// — where it listens, which checks run at each Postfix protocol state, and which Postfix action
// each verdict becomes. The checks' own options stay under `checks`, shared with the server.
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, pathText, showValue, type ConfigProblem } from './errors.ts';
import { Duration } from './units.ts';
import { isNetworkProblem, readNetwork } from '../core/net.ts';

// schema.ts will import this file to plug the section in, so nothing is imported from it (an
// import cycle would meet its constants uninitialised). These two mirror schema.ts exactly.
const PipelineEntry = z.union([
  z.string().min(1),
  z.object({ check: z.string().min(1), mode: z.enum(['enforce', 'warn']).default('enforce'), timeout: Duration.optional() }).strict(),
]);
type PipelineEntry = z.infer<typeof PipelineEntry>;
const LISTENER_KINDS = ['mx', 'submission', 'submissions'] as const;

/** The protocol_state values Postfix 3.x sends. */
export const PROTOCOL_STATES = ['CONNECT', 'EHLO', 'HELO', 'MAIL', 'RCPT', 'DATA', 'END-OF-MESSAGE', 'VRFY', 'ETRN'] as const;
export type ProtocolState = (typeof PROTOCOL_STATES)[number];

/** The states a check list is configured for; EHLO uses the HELO list (Postfix runs the same
 *  smtpd_helo_restrictions for both). */
export const POLICY_LISTS = ['CONNECT', 'HELO', 'MAIL', 'RCPT', 'DATA', 'END-OF-MESSAGE', 'VRFY', 'ETRN'] as const;
export type PolicyList = (typeof POLICY_LISTS)[number];

/** Where the service listens. */
export type ListenAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

const LISTEN_FIX = 'write tcp:127.0.0.1:10040, tcp:[::1]:10040 or unix:/var/spool/postfix/private/mailward';

/** Parses `tcp:HOST:PORT`, `tcp:[V6]:PORT` (also Postfix's `inet:` spelling) or `unix:/abs/path`; a string is the problem. */
export function parseListenAddress(text: string): ListenAddress | string {
  const t = text.trim();
  if (t.startsWith('unix:')) {
    const p = t.slice(5);
    if (!path.isAbsolute(p)) return `${showValue(text)} needs an absolute socket path`;
    return { kind: 'unix', path: p };
  }
  const m = /^(?:tcp|inet):(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(t);
  if (!m) return `${showValue(text)} is not a listen address`;
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port > 65535) return `${showValue(text)} has a port above 65535`;
  if (m[1] !== undefined && isIP(host) !== 6) return `${showValue(text)} has no IPv6 address inside the brackets`;
  if (host !== 'localhost' && isIP(host) === 0) return `${showValue(text)} must name an IP address (or localhost), not a host name`;
  return { kind: 'tcp', host: host === 'localhost' ? '127.0.0.1' : host, port };
}

const Listen = z.string().superRefine((v, ctx) => {
  const r = parseListenAddress(v);
  if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r, params: { fix: LISTEN_FIX } });
});

/** How a decisive verdict is told to Postfix (access(5) actions). `reply` sends the check's own
 *  SMTP reply as `action=550 5.7.1 text`, keeping its code. */
export const POLICY_ACTIONS = ['reply', 'REJECT', 'DEFER', 'DEFER_IF_PERMIT', 'DEFER_IF_REJECT', 'HOLD', 'DISCARD'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];
const Action = z.enum(POLICY_ACTIONS);

const PerCheckActions = z
  .object({ reject: Action.optional(), defer: Action.optional(), discard: Action.optional() })
  .strict();

export const DEFAULT_POLICY_PIPELINE: Partial<Record<PolicyList, PipelineEntry[]>> = { RCPT: ['spf', 'greylist'] };

/** Greylisting's defer lets a later Postfix reject (unknown user) win, as postgrey does. */
export const DEFAULT_CHECK_ACTIONS: Readonly<Record<string, z.output<typeof PerCheckActions>>> = { greylist: { defer: 'DEFER_IF_PERMIT' } };

const Kind = z.enum(LISTENER_KINDS);

export const PolicydSchema = z
  .object({
    /** Where to listen: tcp:HOST:PORT or unix:/path. `mailward policyd --listen` replaces this list. */
    listen: z.array(Listen).min(1).default(['tcp:127.0.0.1:10040']),
    /** Client addresses allowed to ask over TCP (there is no authentication in the protocol). */
    clients: z
      .array(
        // The one network parser (core/net.ts), as for every setting that holds addresses.
        z.string().min(1).superRefine((t, ctx) => {
          const r = readNetwork(t);
          if (isNetworkProblem(r)) ctx.addIssue({ code: 'custom', message: r.problem, params: { fix: r.fix } });
        }),
      )
      .default(['127.0.0.0/8', '::1']),
    /** Mode of a unix socket (octal). Postfix's smtpd runs as user postfix and must be able to connect. */
    socketMode: z.string().regex(/^0?[0-7]{3}$/, 'an octal file mode such as "0660"').default('0660'),
    /** Group of a unix socket (a name from /etc/group or a number), e.g. postfix. Default: ours. */
    socketGroup: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
    /** Ordered check lists per Postfix protocol state (HELO also serves EHLO). A state left out
     *  answers DUNNO. Default: RCPT: [spf, greylist]. */
    pipeline: z
      .object(Object.fromEntries(POLICY_LISTS.map((s) => [s, z.array(PipelineEntry).optional()])) as Record<PolicyList, z.ZodOptional<z.ZodArray<typeof PipelineEntry>>>)
      .strict()
      .default(DEFAULT_POLICY_PIPELINE),
    actions: z
      .object({
        /** A permit (e.g. permit-login) ends Mailward's list. DUNNO lets Postfix go on with its own
         *  list (reject_unauth_destination after us still applies); OK ends Postfix's list too. */
        permit: z.enum(['DUNNO', 'OK']).default('DUNNO'),
        reject: Action.default('reply'),
        defer: Action.default('reply'),
        discard: Action.default('DISCARD'),
        /** Per check overrides, merged over the default `greylist: { defer: DEFER_IF_PERMIT }`. */
        checks: z.record(z.string().min(1), PerCheckActions).default({}),
      })
      .strict()
      .prefault({}),
    /** The SessionFacts.listenerKind checks see (sender-login treats mx and submission apart). */
    listenerKind: Kind.default('mx'),
    /** By Postfix's policy_context attribute (smtpd_policy_service_policy_context in master.cf). */
    policyContexts: z.record(z.string().min(1), Kind).default({}),
    /** By Postfix's server_port attribute, e.g. { "587": submission }. */
    serverPorts: z.record(z.string().regex(/^\d{1,5}$/, 'a port number'), Kind).default({}),
    limits: z
      .object({
        /** Longest attribute line; a longer one ends the connection (after a DEFER answer). */
        maxLineLength: z.number().int().min(256).max(1_048_576).default(8192),
        /** Most attribute lines in one request (Postfix 3.8 sends about 35). */
        maxAttributes: z.number().int().min(40).max(10_000).default(128),
        maxConnections: z.number().int().min(1).default(1000),
        /** A connection with nothing to say for this long is closed (Postfix reconnects). */
        idleTimeout: Duration.default(600_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type PolicydInput = z.input<typeof PolicydSchema>;
export type PolicydConfig = z.output<typeof PolicydSchema>;

/** Validates a `policyd` section; throws ConfigError naming `policyd.<key>`, the value and the fix. */
export function parsePolicyd(input: unknown, source: string): PolicydConfig {
  const r = PolicydSchema.safeParse(input ?? {}, { reportInput: true });
  if (r.success) return r.data;
  throw new ConfigError(source, r.error.issues.map((issue): ConfigProblem => {
    const p = pathText(['policyd', ...issue.path]);
    const input = (issue as { input?: unknown }).input;
    const fix = (issue as { params?: { fix?: string } }).params?.fix;
    switch (issue.code) {
      case 'unrecognized_keys':
        return { path: p, message: `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`, fix: issue.path.length === 1 && issue.path[0] === 'pipeline' ? `use the protocol states ${POLICY_LISTS.join(', ')}` : 'remove it or correct the spelling; see docs/postfix-policy.md' };
      case 'invalid_value':
        return { path: p, message: `${showValue(input)} is not allowed`, fix: `use one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}` };
      case 'custom':
        return { path: p, message: issue.message, fix: fix ?? 'see docs/postfix-policy.md' };
      default:
        return { path: p, message: `${issue.message} (got ${showValue(input)})`, fix: fix ?? 'see docs/postfix-policy.md for the form of this setting' };
    }
  }));
}
