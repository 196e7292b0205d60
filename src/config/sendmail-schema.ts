// The local submission socket behind `mailward sendmail` (docs/decisions/0022-sendmail.md): where
// it is, and which Unix users may submit as which login. The caller's uid is proven by the kernel
// (a file it created, see ingress/local-submit.ts), never taken from what the client says.
import { z } from 'zod';

export const SendmailSchema = z
  .object({
    /** Accept local submissions from `mailward sendmail` on a unix socket. */
    enabled: z.boolean().default(true),
    /** The socket, unless absolute relative to systemd's RuntimeDirectory (/run/mailward under
     *  the shipped unit: every local user reaches it), else to dataDir (0750: its group only). */
    socket: z.string().min(1).default('submit.sock'),
    /** Unix user (name or numeric uid) → the login it submits as: { "www-data": "webmaster@example.org" }. */
    users: z.record(z.string().min(1), z.email()).default({}),
    /** When set, an unmapped user "name" submits as "name@<defaultDomain>"; unset: unmapped users are refused. */
    defaultDomain: z.string().min(1).optional(),
    /** The listener whose check lists (sender-login, outbound guard, rate limits) local mail
     *  passes. Unset: the first submission or submissions listener; without one, no socket. */
    checksOf: z.string().min(1).optional(),
  })
  .strict();
export type SendmailSettings = z.output<typeof SendmailSchema>;
