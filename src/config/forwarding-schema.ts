// Mail that an alias or catch-all forwards outside (docs/decisions/0014-forwarding.md): the
// Sender Rewriting Scheme for the outside copy, and what spam and DMARC-failing mail do at a forward.
import { z } from 'zod';

export const ForwardingSchema = z
  .object({
    srs: z
      .object({
        /**
         * Rewrite the envelope sender of forwarded outside copies to an SRS address (SRS0/SRS1) so
         * that SPF at the next hop checks our domain, and take bounces to it back to the original
         * sender. On by default: without it the next hop sees a stranger's domain sent from our
         * address, fails SPF, and refuses or junks the forward.
         */
        enabled: z.boolean().default(true),
        /** The domain SRS addresses are in. Its MX must be this server and its SPF must cover our
         *  outbound path. Default: the first of `domains`. */
        domain: z.string().min(1).optional(),
        /** Days an SRS address stays valid for bounces (the paper and postsrsd use 21). */
        maxAge: z.number().int().min(1).max(365).default(21),
      })
      .strict()
      .prefault({}),
    /**
     * Mail from a stranger (no login) that the spam check classes as spam, or that fails DMARC
     * under a quarantine or reject policy: "not-forwarded" (default) keeps the outside copies
     * back — local recipients still get it (in Junk), and when every recipient is a forward the
     * message is refused at DATA with 550 5.7.1, so no one downstream sees our server send it
     * and no bounce of ours can go to its likely forged sender. "forwarded": forwarded like any mail.
     */
    junk: z.enum(['not-forwarded', 'forwarded']).default('not-forwarded'),
  })
  .strict();

export type ForwardingInput = z.input<typeof ForwardingSchema>;
