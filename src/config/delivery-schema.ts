// The `delivery` section of the config: how mail that is not for a local mailbox leaves — the
// routing table (per recipient domain: local, smarthost:<name> or mx), the smarthosts, direct MX
// delivery, time-outs, bounces and DKIM signing. Retries are in `queue`. Plugged into schema.ts.
import { z } from 'zod';
import { Duration } from './units.ts';
import { parseLmtpAddress } from '../core/lmtp-address.ts';
import { parseMaildirTemplate } from '../core/maildir-template.ts';
import { DeliveryDaneSchema, DeliveryMtaStsSchema, DeliveryTlsRptSchema } from './transport-security-schema.ts';

const Port = z.number().int().min(1).max(65535);
const NAME_RE = /^[a-z][a-z0-9_-]*$/;
const DOMAIN_RE = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const SELECTOR_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** A route: where recipients of a domain go. */
const Route = z.string().superRefine((v, ctx) => {
  if (v === 'local' || v === 'mx' || (v.startsWith('smarthost:') && NAME_RE.test(v.slice('smarthost:'.length)))) return;
  ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a route`, params: { fix: 'write local, mx, or smarthost:<name> naming an entry of delivery.smarthosts' } });
});

const Smarthost = z
  .object({
    host: z.string().min(1),
    /** Default: 465 for implicit TLS, 587 for STARTTLS. */
    port: Port.optional(),
    /** implicit (TLS from the first byte, port 465) or starttls (must succeed). There is no
     *  plain-text choice: the password and the mail would cross the network readable. */
    tls: z.enum(['implicit', 'starttls']),
    auth: z
      .object({
        user: z.string().min(1),
        /** A file holding only the password (a trailing newline is ignored). */
        passwordFile: z.string().min(1).optional(),
        /** The name of an environment variable holding the password. */
        passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name, e.g. SES_SMTP_PASSWORD').optional(),
      })
      .strict()
      .superRefine((a, ctx) => {
        const n = (a.passwordFile ? 1 : 0) + (a.passwordEnv ? 1 : 0);
        if (n === 1) return;
        ctx.addIssue({
          code: 'custom',
          path: n === 0 ? ['passwordFile'] : ['passwordEnv'],
          message: n === 0 ? 'no password source given' : 'both passwordFile and passwordEnv are given',
          params: { fix: 'give exactly one of passwordFile (a file holding only the password) or passwordEnv (the name of an environment variable); never the password itself' },
        });
      })
      .optional(),
    /** A PEM file of CA certificates to trust for this host (e.g. a private relay's own CA). */
    ca: z.string().min(1).optional(),
    /** Sessions with this host at once. */
    maxConnections: z.number().int().min(1).max(1000).default(10),
  })
  .strict();

const DkimKey = z
  .object({
    selector: z.string().regex(SELECTOR_RE, 'a DNS label, e.g. "mail2025"'),
    /** The PEM private key; default dataDir/dkim/<domain>.<selector>.key. */
    keyFile: z.string().min(1).optional(),
  })
  .strict();

const LocalKind = z.enum(['maildir', 'lmtp']);

/** A Unix user or group: a name from /etc/passwd (/etc/group) or a number. */
const Owner = z.union([z.number().int().min(0).max(4_294_967_294), z.string().regex(/^[a-z_][a-z0-9_.-]*\$?$/i, 'a user or group name, e.g. "vmail", or a number')]);

const LocalSchema = z
  .object({
    /** How mail for local mailboxes is delivered: Mailward's own Maildir writer, or LMTP to Dovecot. */
    transport: LocalKind.default('maildir'),
    /** Per local domain, overriding `transport` (e.g. one domain still in Maildir while moving). */
    domains: z.record(z.string(), LocalKind).default({}),
    lmtp: z
      .object({
        /** Dovecot's LMTP listener: "unix:/var/spool/postfix/private/dovecot-lmtp", "unix:/run/dovecot/lmtp" or "inet:127.0.0.1:24". */
        address: z.string().superRefine((v, ctx) => {
          if (parseLmtpAddress(v)) return;
          ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not an LMTP address`, params: { fix: 'write unix:<absolute socket path> (e.g. unix:/run/dovecot/lmtp) or inet:<host>:<port> (e.g. inet:127.0.0.1:24)' } });
        }),
        /** LMTP sessions at once (Dovecot runs one lmtp process per session). */
        maxConnections: z.number().int().min(1).max(1000).default(10),
      })
      .strict()
      .optional(),
    maildir: z
      .object({
        /** Where a mailbox's Maildir is: %u the address, %n its local part, %d its domain, %% a "%".
         *  Default: <dataDir>/mail/%d/%n/Maildir. Relative paths are relative to the config file. */
        path: z
          .string()
          .min(1)
          .superRefine((v, ctx) => {
            const err = parseMaildirTemplate(v).error;
            if (err) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)}: ${err}`, params: { fix: 'write a path such as /var/vmail/%d/%n/Maildir using %u (address), %n (local part), %d (domain)' } });
          })
          .optional(),
        /** Lower-case the address before it becomes a path (as Dovecot's auth_username_format=%Lu). */
        lowercase: z.enum(['all', 'domain']).default('all'),
        /** Owner of the folders and files written (e.g. "vmail" or 5000): set it to the user Dovecot reads mail as. */
        owner: Owner.optional(),
        /** Their group (default: the owner's primary group when owner is a name). */
        group: Owner.optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((l, ctx) => {
    const lmtpUsed = l.transport === 'lmtp' || Object.values(l.domains).includes('lmtp');
    if (lmtpUsed && !l.lmtp) {
      ctx.addIssue({ code: 'custom', path: ['lmtp'], message: 'LMTP delivery is chosen but no LMTP server is given', params: { fix: 'set delivery.local.lmtp.address to Dovecot\'s LMTP listener, e.g. unix:/run/dovecot/lmtp' } });
    }
    for (const key of Object.keys(l.domains)) {
      if (!DOMAIN_RE.test(key.replace(/\.$/, ''))) ctx.addIssue({ code: 'custom', path: ['domains', key], message: `${JSON.stringify(key)} is not a domain`, params: { fix: 'key the entry by one of your mail domains, e.g. example.org' } });
    }
  });

export const DeliverySchema = z
  .object({
    /** Mail for local mailboxes: Maildir (path template, owner) or LMTP to Dovecot. */
    local: LocalSchema.prefault({}),
    /** Recipient domain → route. "example.com" is that domain, ".example.com" its subdomains,
     *  "*" every other domain. Without "*", mail goes out by direct MX delivery. */
    routes: z.record(z.string(), Route).default({}),
    /** Relay hosts by name, used by routes "smarthost:<name>". */
    smarthosts: z.record(z.string().regex(NAME_RE, 'smarthost names are lower-case words, e.g. "ses"'), Smarthost).default({}),
    mx: z
      .object({
        /** Port of remote MX hosts. Always 25 on the internet; other values are for tests. */
        port: Port.default(25),
        /** Deliveries to one recipient domain at once. */
        concurrencyPerDomain: z.number().int().min(1).max(1000).default(10),
      })
      .strict()
      .prefault({}),
    /** The name given in EHLO to other servers (default: hostname). */
    heloName: z.string().min(1).optional(),
    timeouts: z
      .object({
        connect: Duration.default(30_000),
        greeting: Duration.default(300_000),
        /** Longest silence within a session (RFC 5321 §4.5.3.2 suggests minutes per step). */
        idle: Duration.default(300_000),
      })
      .strict()
      .prefault({}),
    bounces: z
      .object({
        /** Warn the sender when a message is still undelivered after `delayWarningAfter`. */
        delayWarnings: z.boolean().default(false),
        delayWarningAfter: Duration.default(4 * 3_600_000),
      })
      .strict()
      .prefault({}),
    dkim: z
      .object({
        /** Sign mail leaving for other servers when a key covers its From domain. */
        enabled: z.boolean().default(true),
        /** Keys by domain; keys in dataDir/dkim/<domain>.<selector>.key are found without this. */
        keys: z.record(z.string(), DkimKey).default({}),
      })
      .strict()
      .prefault({}),
    /** Other domains' MTA-STS policies (RFC 8461) on direct MX delivery. */
    mtaSts: DeliveryMtaStsSchema.prefault({}),
    /** DANE (RFC 7672): TLSA records of recipient MX hosts, from a validating resolver. */
    dane: DeliveryDaneSchema.prefault({}),
    /** TLS-RPT reports (RFC 8460) on the outcome of MTA-STS to the domains that ask for them. */
    tlsRpt: DeliveryTlsRptSchema.prefault({}),
  })
  .strict()
  .superRefine((d, ctx) => {
    const names = Object.keys(d.smarthosts);
    for (const [key, route] of Object.entries(d.routes)) {
      const k = key.toLowerCase().replace(/\.$/, '');
      if (k !== '*' && !DOMAIN_RE.test(k.startsWith('.') ? k.slice(1) : k)) {
        ctx.addIssue({ code: 'custom', path: ['routes', key], message: `${JSON.stringify(key)} is not a domain pattern`, params: { fix: 'write a domain ("example.com"), its subdomains (".example.com") or "*" for every other domain' } });
      }
      if (route.startsWith('smarthost:')) {
        const name = route.slice('smarthost:'.length);
        if (!names.includes(name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['routes', key],
            message: `${JSON.stringify(route)} names no smarthost`,
            params: { fix: names.length > 0 ? `use one of ${names.map((n) => `smarthost:${n}`).join(', ')}, or define delivery.smarthosts.${name}` : `define delivery.smarthosts.${name} with host, port, tls and auth` },
          });
        }
      }
    }
    for (const key of Object.keys(d.dkim.keys)) {
      if (!DOMAIN_RE.test(key)) ctx.addIssue({ code: 'custom', path: ['dkim', 'keys', key], message: `${JSON.stringify(key)} is not a domain`, params: { fix: 'key the entry by the domain of the From header, e.g. example.org' } });
    }
  });

export type DeliveryConfig = z.output<typeof DeliverySchema>;
