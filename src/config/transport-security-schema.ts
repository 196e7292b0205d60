// Transport security of the domain: the MTA-STS policy this server publishes for its own domains
// (`mtaSts`, RFC 8461 §3.3), where reports about them go (`reports`: the DMARC and TLS-RPT `rua`
// printed by `mailward dns records`), and how outbound delivery honours other domains' MTA-STS
// policies and sends TLS-RPT reports (`delivery.mtaSts`, `delivery.tlsRpt`). Plugged into schema.ts.
import { isIP } from 'node:net';
import { z } from 'zod';
import { Duration } from './units.ts';

const Port = z.number().int().min(0).max(65535);
const HOST_PORT_RE = /^(?:\[[0-9a-f:.]+\]|[0-9.]+):\d{1,5}$/i;

export const MtaStsServeSchema = z
  .object({
    serve: z
      .object({
        /** Serve https://mta-sts.<domain>/.well-known/mta-sts.txt for every local domain, from tls.cert. */
        enabled: z.boolean().default(false),
        host: z.string().min(1).default('0.0.0.0'),
        /** 443 on the internet (RFC 8461 §3.3 names no other port); other values for tests or a proxy in front. */
        port: Port.default(443),
        /** testing: senders report failures but still deliver; enforce: they refuse to deliver without
         *  verified TLS to a listed MX. Start with testing, read the TLS-RPT reports, then enforce. */
        mode: z.enum(['testing', 'enforce', 'none']).default('testing'),
        /** MX patterns in the policy (RFC 8461 §4.1, "*.example.org" allowed); default: hostname. */
        mx: z.array(z.string().min(1)).default([]),
        /** How long senders may cache the policy (RFC 8461 §3.2: up to 31557600 s). */
        maxAge: Duration.default(7 * 86_400_000).refine((ms) => ms >= 86_400_000 && ms <= 31_557_600_000, {
          message: 'must lie between 1d and 365d',
          params: { fix: 'use e.g. "7d" (RFC 8461 §3.2 recommends weeks once the policy is in enforce mode)' },
        }),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export const ReportsSchema = z
  .object({
    /** The address receiving DMARC aggregate and TLS-RPT reports about your domains (the `rua` of
     *  the _dmarc and _smtp._tls records); default postmaster@<domain>. */
    address: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'an e-mail address, e.g. reports@example.org').optional(),
    /** Alert on the guard's channels when a received DMARC report shows a new source failing as
     *  one of our domains, or a TLS-RPT report a new failure (app/report-alerts.ts). */
    alertNewFailures: z.boolean().default(true),
    /** One alert per (domain, source) within this long. */
    alertWindow: Duration.refine((ms) => ms >= 3_600_000, 'at least an hour, e.g. "30d"').default(30 * 86_400_000),
  })
  .strict();

export const DeliveryMtaStsSchema = z
  .object({
    /** Honour the MTA-STS policies of recipient domains (RFC 8461 §5): in enforce mode, mail goes
     *  only to a listed MX over TLS with a valid certificate for its name. */
    enabled: z.boolean().default(true),
    /** A PEM file of extra CA certificates trusted, beside the system's, for policy fetches and
     *  MTA-STS-verified SMTP sessions. For private test setups; leave unset on the internet. */
    caFile: z.string().min(1).optional(),
    /** Test hook: "mta-sts.example.net" → "127.0.0.1:8443", the address a policy host is fetched
     *  from instead of its A/AAAA records. Never needed in production; only used when set. */
    addresses: z.record(z.string(), z.string().regex(HOST_PORT_RE, 'an address and port, e.g. 127.0.0.1:8443')).default({}),
    /** Deadline of one policy fetch (RFC 8461 §3.3 suggests no more than a minute). */
    fetchTimeout: Duration.default(60_000),
  })
  .strict();

export const DeliveryTlsRptSchema = z
  .object({
    /** Send a daily TLS-RPT report (RFC 8460) to each recipient domain that publishes _smtp._tls. */
    enabled: z.boolean().default(true),
    /** The sender of reports (RFC 8460 §3: a contact); default postmaster@<first domain>. */
    from: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'an e-mail address, e.g. postmaster@example.org').optional(),
  })
  .strict();

export const DeliveryDaneSchema = z
  .object({
    /** Honour recipient MX hosts' DNSSEC-signed TLSA records (DANE, RFC 7672): STARTTLS required
     *  and the certificate must match them. Needs a validating resolver in dns.servers. */
    enabled: z.boolean().default(false),
    /** Resolver addresses (besides loopback ones, always trusted) whose DNSSEC "AD" bit is
     *  believed. List one only when the path to it is protected (same host or a secured link). */
    trustedResolvers: z.array(z.string().refine((s) => isIP(s) !== 0, 'an IP address, e.g. 10.0.0.53')).default([]),
  })
  .strict();
