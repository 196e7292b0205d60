// Account hygiene that `mailward doctor` checks continuously (doctor/audit-accounts.ts): the
// lessons of the incident, where a forgotten account with an old password was stolen and the
// smarthost keys had never been rotated.
import { z } from 'zod';
import { Duration } from './units.ts';

export const HygieneSchema = z
  .object({
    /** A login without a successful login for this long is named (delete or disable it). */
    unusedLogin: Duration.default(90 * 86_400_000),
    /** A password set longer ago than this is named. NIST SP 800-63B advises against forced
     *  periodic changes, so the default is long: a year. */
    passwordAge: Duration.default(365 * 86_400_000),
    /** A smarthost credential (its passwordFile) older than this is named; 90 days is AWS's
     *  advice for access keys (SES SMTP credentials are derived from one). */
    credentialAge: Duration.default(90 * 86_400_000),
    /** How often the server sends these findings as a digest on the guard's alert channels (0: never). */
    digest: Duration.default(86_400_000),
  })
  .strict();
export type HygieneSettings = z.output<typeof HygieneSchema>;
