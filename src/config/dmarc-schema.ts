// DMARC aggregate reports (RFC 7489 §7.2): sending them to the domains whose mail we receive
// (`dmarcReports.send`), and reading the ones other receivers send to our own `rua`
// (`dmarcReports.read`). Plugged into schema.ts; see docs/guide/dmarc-reports.md.
import { z } from 'zod';
import { Duration, Size } from './units.ts';

const Email = z.string().regex(/^[^@\s]+@[^@\s]+$/, 'an e-mail address, e.g. postmaster@example.org');

export const DmarcReportsSchema = z
  .object({
    send: z
      .object({
        /** Count inbound DMARC evaluations and mail each sender domain's `rua` its aggregate report.
         *  Off by default: it makes the server send mail to addresses chosen by other domains'
         *  DNS (docs/decisions/0030-dmarc-reports.md). */
        enabled: z.boolean().default(false),
        /** The reporting period (RFC 7489 §7.2.1.2: a day is the default; hourly is the shortest asked for). */
        interval: Duration.refine((ms) => ms >= 1000, 'at least a second, e.g. "1d" (RFC 7489 §7.2.1.2: a day is usual)').default(86_400_000),
        /** The report's sender and contact (RFC 7489 §7.2.1.1 metadata email); default postmaster@<first domain>. */
        from: Email.optional(),
        /** The report's org_name; default the server's hostname. */
        organization: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    read: z
      .object({
        /** Parse the aggregate reports delivered to `addresses` and keep them for `mailward dmarc
         *  report` and the dashboard. On by default: it only reads mail that arrives anyway, within
         *  the limits below, and the mail is still delivered to the mailbox as before
         *  (docs/decisions/0035-dmarc-report-reading.md). */
        enabled: z.boolean().default(true),
        /** The local addresses whose mail is read for reports; default reports.address, else
         *  postmaster@<each domain> — the `rua` that `mailward dns records` prints. */
        addresses: z.array(Email).optional(),
        /** Largest report attachment, compressed, that is opened. */
        maxAttachmentSize: Size.refine((n) => n > 0, 'more than 0 bytes, e.g. "10MB"').default(10 * 2 ** 20),
        /** Largest XML after gunzip/unzip: the bound that stops a decompression bomb. */
        maxXmlSize: Size.refine((n) => n > 0, 'more than 0 bytes, e.g. "50MB"').default(50 * 2 ** 20),
        /** Most <record> rows kept of one report (the rest are counted, not stored). */
        maxRecords: z.number().int().min(1).default(10_000),
        /** How long a stored report is kept. */
        retention: Duration.refine((ms) => ms >= 86_400_000, 'at least a day, e.g. "90d"').default(90 * 86_400_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** TLS-RPT reports (RFC 8460) other senders mail to the rua of our `_smtp._tls` record. */
export const TlsReportsSchema = z
  .object({
    read: z
      .object({
        /** Parse the TLS-RPT reports delivered to `addresses` and keep them for `mailward tlsrpt
         *  report` and the dashboard; the mail is still delivered (docs/decisions/0040-tlsrpt-reading.md). */
        enabled: z.boolean().default(true),
        /** The local addresses read; default dmarcReports.read.addresses, else reports.address, else
         *  postmaster@<each domain> — the `rua` that `mailward dns records` prints. */
        addresses: z.array(Email).optional(),
        /** Largest report attachment, compressed, that is opened. */
        maxAttachmentSize: Size.refine((n) => n > 0, 'more than 0 bytes, e.g. "1MB"').default(2 ** 20),
        /** Largest JSON after gunzip: the bound that stops a decompression bomb. */
        maxJsonSize: Size.refine((n) => n > 0, 'more than 0 bytes, e.g. "10MB"').default(10 * 2 ** 20),
        /** A report with more policies than this is refused. */
        maxPolicies: z.number().int().min(1).default(100),
        /** Most failure details kept per policy (the rest are counted, not stored). */
        maxFailureDetails: z.number().int().min(1).default(1000),
        /** How long a stored report is kept. */
        retention: Duration.refine((ms) => ms >= 86_400_000, 'at least a day, e.g. "90d"').default(90 * 86_400_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();
