// DMARC aggregate reports (RFC 7489 §7.2): sending them to the domains whose mail we receive
// (`dmarcReports.send`). Plugged into schema.ts; see docs/guide/dmarc-reports.md.
import { z } from 'zod';
import { Duration } from './units.ts';

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
  })
  .strict();
