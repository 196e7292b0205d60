// tls.acme: certificates from an ACME CA (RFC 8555, e.g. Let's Encrypt) for the listed host
// names, obtained and renewed by the server itself (app/acme.ts, docs/decisions/0027-acme.md).
import { z } from 'zod';
import { Duration } from './units.ts';

/** Let's Encrypt's production directory (RFC 8555 §7.1.1). */
export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';

const HostName = z
  .string()
  .regex(/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]\.?$/i, 'a fully qualified host name such as mx.example.org (no wildcards: http-01 cannot prove them)')
  .transform((h) => h.toLowerCase().replace(/\.$/, ''));

export const AcmeSchema = z
  .object({
    /** The CA's directory URL; Let's Encrypt's staging directory is good for a first try. */
    directory: z.string().regex(/^https:\/\/[^\s/]+/i, 'an https:// URL').default(LETS_ENCRYPT),
    /** Contact address for the account: the CA mails expiry and policy notices there. */
    email: z.email().optional(),
    /** The names on the certificate (one certificate for all): the MX name, mta-sts.<domain>, ... */
    hostnames: z.array(HostName).min(1, 'list at least one host name, e.g. [mx.example.org]'),
    /** How the CA checks that we hold the names: http-01, a file served on port 80 (RFC 8555
     *  §8.3); or tls-alpn-01, a special certificate on port 443 (RFC 8737). */
    challenge: z.enum(['http-01', 'tls-alpn-01']).default('http-01'),
    /** The listener that answers http-01 (port 80 as the CA connects to it); nothing else is served there. */
    http: z
      .object({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(80),
      })
      .strict()
      .prefault({}),
    /** The listener that answers tls-alpn-01 (port 443); only handshakes for "acme-tls/1" succeed there. */
    alpn: z
      .object({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(443),
      })
      .strict()
      .prefault({}),
    /** PEM file with the CA that signs the directory's HTTPS certificate: for a private ACME CA only. */
    directoryCa: z.string().min(1).optional(),
    /** Renew when this fraction of the certificate's lifetime has passed (2/3: day 60 of 90). */
    renewAt: z.number().gt(0).lt(1).default(2 / 3),
    /** Back-off after a failed attempt: doubles from `retry` up to `maxRetry`. */
    retry: Duration.default(600_000),
    maxRetry: Duration.default(43_200_000),
    /** Alert (guard alert channels) when renewal still fails this close to expiry. */
    alertBefore: Duration.default(14 * 86_400_000),
  })
  .strict();
export type AcmeSettings = z.output<typeof AcmeSchema>;
