// The whole configuration as one zod schema: every option, its default and its meaning.
// Unknown keys are errors (strict objects). Units are parsed here, so the rest of the code sees
// plain milliseconds and bytes. Safety rules that span several keys live in invariants.ts.
import { z } from 'zod';
import { Duration, Size } from './units.ts';
import { DeliverySchema } from './delivery-schema.ts';
import { AdminSchema } from './admin-schema.ts';
import { SendmailSchema } from './sendmail-schema.ts';
import { ForwardingSchema } from './forwarding-schema.ts';
import { RecipientsSchema } from './recipients-schema.ts';
import { MtaStsServeSchema, ReportsSchema } from './transport-security-schema.ts';
import { AcmeSchema } from './acme-schema.ts';
import { SelfProbeSchema } from './self-probe-schema.ts';
import { HygieneSchema } from './hygiene-schema.ts';
import { DmarcReportsSchema, TlsReportsSchema } from './dmarc-schema.ts';

/** Envelope listener names of bounces, TLS-RPT and DMARC reports and guard alerts. */
const RESERVED_LISTENER_NAMES: readonly string[] = ['bounce', 'tls-report', 'dmarc-report', 'outbound-guard'];

const Port = z.number().int().min(0).max(65535);
const Host = z.string().min(1);

/** A check placed in a stage list: its name, or the name with per-placement settings. */
export const PipelineEntry = z.union([
  z.string().min(1),
  z
    .object({
      check: z.string().min(1),
      /** enforce: the verdict counts; warn: the verdict is only logged (Postfix's warn_if_reject). */
      mode: z.enum(['enforce', 'warn']).default('enforce'),
      /** Deadline for this check; past it the verdict is a 4xx defer, never a pass. */
      timeout: Duration.optional(),
    })
    .strict(),
]);
export type PipelineEntry = z.infer<typeof PipelineEntry>;

/** The check a list entry names ("dnsbl" or { check: dnsbl, … }). */
export const entryCheck = (e: PipelineEntry): string => (typeof e === 'string' ? e : e.check);

/** The deadline of a list entry: its own timeout, else the config's checkTimeout. */
export const entryTimeout = (e: PipelineEntry, checkTimeoutMs: number): number => (typeof e === 'string' ? checkTimeoutMs : (e.timeout ?? checkTimeoutMs));

export const STAGES = ['connect', 'helo', 'mail', 'rcpt', 'data'] as const;
export type Stage = (typeof STAGES)[number];

const StageLists = z
  .object({
    connect: z.array(PipelineEntry).optional(),
    helo: z.array(PipelineEntry).optional(),
    mail: z.array(PipelineEntry).optional(),
    rcpt: z.array(PipelineEntry).optional(),
    data: z.array(PipelineEntry).optional(),
  })
  .strict();

/** The one value relay.allowLocalTrust takes: it says what trusting loopback means. */
export const LOCAL_TRUST_ACK = 'tunnels-make-this-an-open-relay';

export const LISTENER_KINDS = ['mx', 'submission', 'submissions'] as const;
export type ListenerKind = (typeof LISTENER_KINDS)[number];

const ListenerInput = z
  .object({
    /** mx: mail from the world (port 25); submission: users' clients with STARTTLS (587);
     *  submissions: users' clients with implicit TLS (465, RFC 8314). */
    kind: z.enum(LISTENER_KINDS),
    enabled: z.boolean().default(true),
    host: Host.default('127.0.0.1'),
    port: Port,
    /** Offer STARTTLS (default: yes when kind is mx or submission). */
    starttls: z.boolean().optional(),
    /** Offer AUTH (default: off on mx, on for submission/submissions). Only ever over TLS. */
    auth: z.boolean().optional(),
    /** Refuse MAIL FROM until the client authenticated (default: on for submission/submissions). */
    requireAuth: z.boolean().optional(),
    /** Refuse MAIL FROM until TLS is up (default: on for submission). */
    requireTls: z.boolean().optional(),
    /** Advertise REQUIRETLS (RFC 8689) after STARTTLS or on implicit TLS (default: on). */
    advertiseRequireTls: z.boolean().default(true),
    /** Pause before the greeting; clients that talk first are dropped (postscreen-style). 0 = none. */
    greetingDelay: Duration.optional(),
    /** PROXY protocol (v1/v2): the proxy hosts allowed to send a header. From them it is required. */
    proxy: z.object({ trusted: z.array(z.string().min(1)).default([]) }).strict().prefault({}),
    /** Per-stage check lists for this listener, replacing the global ones stage by stage. */
    pipeline: StageLists.optional(),
  })
  .strict();

export const DEFAULT_PIPELINE: Record<Stage, PipelineEntry[]> = {
  // Connection rules (checks.rate-limit.rules with count: connections) count here. Without one
  // the check has no connect handler, and the runner skips it: no timer, no store round trip.
  connect: ['rate-limit'],
  helo: [],
  mail: ['sender-login'],
  // The outbound guard before the rate limits: recipients it refuses do not use up a limit.
  rcpt: ['recipient', 'outbound-guard', 'rate-limit'],
  // Message rules count after sender-login (a refused message uses up no limit) and before
  // permit-login, which ends the list for a login: a stolen login must still be counted.
  // Content filter for mail from strangers; a login's own mail is not scored (permit ends the list).
  // The outbound guard again: the aggregate breaker may have opened since RCPT.
  data: ['sender-login', 'outbound-guard', 'rate-limit', 'permit-login', 'spam'],
};

export const ConfigSchema = z
  .object({
    /** The name this server gives in greetings and Received headers. Default: the machine's name. */
    hostname: z.string().min(1).optional(),
    /** The mail domains this server receives mail for. */
    domains: z.array(z.string().min(1)).min(1).default(['localhost']),
    /**
     * Processes that run SMTP sessions: 1 (the default) runs everything in one process; N > 1
     * forks N acceptor processes that run the sessions, their checks and the spool writes, while
     * this process keeps the listening sockets, the connection limits, the queue and delivery;
     * "auto" is one per CPU core, and 1 on 2 cores or fewer: there one process accepts more mail per second than three
     * (docs/decisions/0012-acceptor-processes.md): measure with bench/smtp before raising it.
     */
    workers: z.union([z.literal('auto'), z.number().int().min(1).max(64)]).default(1),
    /** Folder for the spool, mailboxes, certificates and SQLite files. */
    dataDir: z.string().min(1).default('./data'),
    /**
     * Started as root, `serve` binds the listeners, hands dataDir to this user and switches to it
     * (and to `group`) before it reads any mail; the acceptor processes run as it too. Without
     * root the server runs as whoever started it (under systemd: User= with
     * AmbientCapabilities=CAP_NET_BIND_SERVICE). See docs/decisions/0020-unprivileged-systemd.md.
     */
    user: z.string().min(1).optional(),
    /** The group to run as with `user` (default: that user's login group). */
    group: z.string().min(1).optional(),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** json, pretty (readable), auto (pretty on a terminal, JSON otherwise), or postfix: one
         *  line per event as Postfix writes them ("QUEUEID: to=<…>, orig_to=<…>, relay=…, status=sent (…)"). */
        format: z.enum(['json', 'pretty', 'auto', 'postfix']).default('auto'),
      })
      .strict()
      .prefault({}),
    tls: z
      .object({
        /** PEM certificate chain and key files. Without them a self-signed pair is made in dataDir. */
        cert: z.string().min(1).optional(),
        key: z.string().min(1).optional(),
        /** Certificates from an ACME CA (Let's Encrypt), obtained and renewed by the server. */
        acme: AcmeSchema.optional(),
      })
      .strict()
      .prefault({}),
    listeners: z
      .record(z.string().regex(/^[a-z][a-z0-9-]*$/, 'listener names are lower-case words, e.g. "mx"'), ListenerInput)
      // The envelopes of mail the server writes itself carry these names, and such mail is
      // DKIM-signed (delivery/router.ts maySign): a listener by one of them would get its
      // senders' mail signed too.
      .superRefine((l, ctx) => {
        for (const name of Object.keys(l).filter((n) => RESERVED_LISTENER_NAMES.includes(n))) {
          ctx.addIssue({ code: 'custom', path: [name], message: `the name ${JSON.stringify(name)} is reserved for mail the server writes itself (${RESERVED_LISTENER_NAMES.join(', ')})`, params: { fix: `name the listener otherwise, e.g. "${name}-in"` } });
        }
      })
      .prefault({
        mx: { kind: 'mx', port: 2525 },
        submission: { kind: 'submission', port: 5870 },
        submissions: { kind: 'submissions', port: 4650 },
      }),
    limits: z
      .object({
        maxMessageSize: Size.default(25 * 1024 * 1024),
        maxRecipients: z.number().int().min(1).default(100),
        maxLineLength: z.number().int().min(512).default(4096),
        maxBadCommands: z.number().int().min(1).default(10),
        /** Command lines per connection (over-long and bad ones included); then 421 and close. */
        maxCommands: z.number().int().min(10).default(1000),
        /** Time a client has to send a whole command line, counted from when the server waits for
         *  it (not from its last byte, so trickling one byte at a time does not extend it); in DATA,
         *  the longest pause between two packets. RFC 5321 §4.5.3.2.7: at least 5 minutes. */
        commandTimeout: Duration.default(300_000),
        /** Deadline for one whole DATA transfer, or for all BDAT chunks of one message. */
        dataTimeout: Duration.default(600_000),
        maxConnections: z.number().int().min(1).default(1000),
        maxConnectionsPerClient: z.number().int().min(1).default(20),
        /** Bare CR or LF in a message (SMTP smuggling): reject it (554 5.5.2), normalise them to
         *  CRLF before it is queued, or accept them as they came (kept for older setups; outbound
         *  mail is CRLF-normalised anyway). Applies to every client, trusted networks included. */
        bareLineEndings: z.enum(['reject', 'normalise', 'accept']).default('reject'),
      })
      .strict()
      .prefault({}),
    relay: z
      .object({
        /** Client networks allowed to relay without a login. Empty by default; loopback and
         *  private ranges are never trusted unless listed here by hand. */
        trustedNetworks: z.array(z.string().min(1)).default([]),
        /** A trusted network that holds loopback, a listener's own address or a PROXY sender is
         *  refused: every tunnel, port forward or proxy on this host connects from there, so it
         *  makes an open relay. Set to exactly LOCAL_TRUST_ACK to start anyway (warned at every
         *  start and reload, and on the dashboard). See docs/guide/trusted-networks.md. */
        allowLocalTrust: z.literal(LOCAL_TRUST_ACK).optional(),
      })
      .strict()
      .prefault({}),
    /** Local recipient details: "user+tag@domain" is delivered to "user@domain". Empty to turn off. */
    recipientDelimiter: z.string().max(1).default('+'),
    /** Ordered check lists per SMTP stage; the first decisive verdict wins. */
    pipeline: StageLists.prefault({}),
    /** Default deadline of a check; past it the verdict is a 4xx defer. */
    checkTimeout: Duration.default(10_000),
    /** Options of each check, by check name. */
    checks: z.record(z.string(), z.unknown()).prefault({}),
    queue: z
      .object({
        minBackoff: Duration.default(300_000),
        maxBackoff: Duration.default(3_600_000),
        maxAge: Duration.default(5 * 86_400_000),
        concurrency: z.number().int().min(1).max(1000).default(20),
        /** Turn fsync off ONLY for throw-away test setups: a 250 then no longer means "on disk". */
        fsync: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    /**
     * Password guessing (ingress/auth-guard.ts): failed logins are counted in the store per
     * (login, client network) and per client network (/24, /64). They only ever slow or refuse
     * AUTH; mail that does not log in (the MX port) is never refused for them.
     */
    auth: z
      .object({
        /** Failures of one login from one network within `window` before it is locked there (for `block`). */
        maxFailures: z.number().int().min(1).default(5),
        /** Failures of one login from all networks before each further try of it is delayed (never locked). */
        maxLoginFailures: z.number().int().min(1).default(3),
        /** Failures from one network, over all logins, within `window` before its AUTH is refused (for `block`). */
        maxNetworkFailures: z.number().int().min(1).default(20),
        /** First delay past maxLoginFailures; it doubles per failure up to maxDelay. 0: no delay. */
        delay: Duration.default(500),
        maxDelay: Duration.default(8000),
        window: Duration.default(900_000),
        block: Duration.default(3_600_000),
        /** Threads that run scrypt for logins (default: 1 on one or two CPUs, else 2). */
        hashThreads: z.number().int().min(1).max(16).optional(),
        /** Logins that may wait for a hashing thread; past it AUTH answers 454 at once. */
        hashQueue: z.number().int().min(0).max(10_000).default(32),
        /** Whose passwords AUTH checks: Mailward's own users (`mailward user add`), or Dovecot's
         *  passdb through its auth socket (as Postfix's smtpd_sasl_type = dovecot). The limits above apply to both. */
        backend: z.enum(['mailward', 'dovecot']).default('mailward'),
        dovecot: z
          .object({
            /** Dovecot's auth-client socket (service auth { unix_listener ... }). */
            socket: z.string().startsWith('/', 'an absolute socket path, e.g. /var/spool/postfix/private/auth'),
            /** The service name Dovecot's passdb sees (%s). */
            service: z.string().regex(/^[a-z][a-z0-9-]*$/).default('smtp'),
            /** Past it the login is answered 454 (try later). */
            timeout: Duration.default(10_000),
          })
          .strict()
          .optional(),
      })
      .strict()
      .superRefine((a, ctx) => {
        if (a.backend === 'dovecot' && !a.dovecot) {
          ctx.addIssue({ code: 'custom', path: ['dovecot'], message: 'auth.backend is dovecot but no Dovecot auth socket is given', params: { fix: 'set auth.dovecot.socket to the auth-client listener of Dovecot, e.g. /var/spool/postfix/private/auth' } });
        }
      })
      .prefault({}),
    /** The operator's HTTP API, dashboard and /metrics (off by default; loopback; bearer token). */
    admin: AdminSchema.prefault({}),
    /** Mailboxes the recipient check finds outside Mailward's own list: Dovecot's userdb (recipients-schema.ts). */
    recipients: RecipientsSchema.prefault({}),
    /** The relay self-probe: relay-test against our own listeners on a schedule and after reloads (self-probe-schema.ts). */
    selfProbe: SelfProbeSchema.prefault({}),
    /** What doctor names: unused logins, old passwords and smarthost credentials (hygiene-schema.ts). */
    hygiene: HygieneSchema.prefault({}),
    /** Local submission for `mailward sendmail` (see sendmail-schema.ts). */
    sendmail: SendmailSchema.prefault({}),
    /** Aliases and catch-alls that forward outside: SRS, and spam/DMARC at a forward (forwarding-schema.ts). */
    forwarding: ForwardingSchema.prefault({}),
    /** Outbound delivery: routing, smarthost, direct MX (see delivery-schema.ts). */
    delivery: DeliverySchema.prefault({}),
    /** The MTA-STS policy served for the local domains (transport-security-schema.ts). */
    mtaSts: MtaStsServeSchema.prefault({}),
    /** Where DMARC and TLS-RPT reports about the local domains go (`mailward dns records`). */
    reports: ReportsSchema.prefault({}),
    /** DMARC aggregate reports sent and read (dmarc-schema.ts). */
    dmarcReports: DmarcReportsSchema.prefault({}),
    /** TLS-RPT reports read at our rua (dmarc-schema.ts). */
    tlsReports: TlsReportsSchema.prefault({}),
    dns: z
      .object({
        /** DNS servers to ask ("127.0.0.1", "[::1]:5353", "10.0.0.2:53"); empty: the system's. */
        servers: z.array(z.string().min(1)).default([]),
        /** Time-out of one DNS query; past it a check defers (4xx), never accepts. */
        timeout: Duration.default(5000),
        tries: z.number().int().min(1).max(5).default(2),
      })
      .strict()
      .prefault({}),
    store: z
      .object({
        backend: z.enum(['sqlite', 'redis']).default('sqlite'),
        sqlite: z.object({ path: z.string().min(1).optional() }).strict().prefault({}),
        redis: z
          .object({
            url: z.string().min(1).optional(),
            sentinels: z.array(z.object({ host: Host, port: Port }).strict()).optional(),
            name: z.string().optional(),
            cluster: z.array(z.object({ host: Host, port: Port }).strict()).optional(),
            keyPrefix: z.string().default('mailward:'),
            timeout: Duration.default(1000),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof ConfigSchema>;
export type RawConfig = z.output<typeof ConfigSchema>;
