// Where the recipient check looks beyond Mailward's own mailboxes: Dovecot's userdb through its
// auth-userdb socket (directory/dovecot-userdb.ts), as Postfix asks a virtual mailbox map, so the
// users Dovecot already has receive mail without being listed twice.
import { z } from 'zod';
import { Duration } from './units.ts';

export const RecipientsSchema = z
  .object({
    dovecot: z
      .object({
        /** Dovecot's auth-userdb socket (service auth { unix_listener auth-userdb { ... } }). */
        socket: z.string().startsWith('/', 'an absolute socket path, e.g. /run/dovecot/auth-userdb'),
        /** Local domains whose users Dovecot knows; empty: every domain in `domains`. */
        domains: z.array(z.string().min(1)).default([]),
        /** The service name Dovecot's userdb sees (%s). */
        service: z.string().regex(/^[a-z][a-z0-9-]*$/).default('smtp'),
        /** Past it RCPT is answered 451 4.3.0 (in doubt: the sender retries). Keep it under checkTimeout. */
        timeout: Duration.default(2000),
        /** How long an answer is remembered: "exists" and "no such user". */
        positiveTtl: Duration.default(60_000),
        negativeTtl: Duration.default(30_000),
      })
      .strict()
      .optional(),
  })
  .strict();
export type RecipientsSettings = z.output<typeof RecipientsSchema>;
