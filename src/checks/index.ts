// Every check Mailward knows, by name: the explicit list the registry is built from (no
// registration by import side effects). A new check is one file here plus one line below.
import type { CheckDefinition } from '../pipeline/check.ts';
import { clientAccess } from './client-access.ts';
import { dkimDmarc } from './dkim-dmarc.ts';
import { dnsbl } from './dnsbl.ts';
import { greylist } from './greylist.ts';
import { helo } from './helo.ts';
import { permitLogin } from './permit-login.ts';
import { heloAccess } from './helo-access.ts';
import { recipient } from './recipient.ts';
import { recipientAccess } from './recipient-access.ts';
import { recipientDomain } from './recipient-domain.ts';
import { senderAccess } from './sender-access.ts';
import { senderDomain } from './sender-domain.ts';
import { senderLogin } from './sender-login.ts';
import { spam } from './spam.ts';
import { spf } from './spf.ts';
import { rateLimit } from './rate-limit.ts';
import { outboundGuard } from './outbound-guard.ts';
import { virus } from './virus.ts';
import { uribl } from './uribl.ts';

export const ALL_CHECKS: readonly CheckDefinition[] = [
  recipient,
  permitLogin,
  senderLogin,
  clientAccess,
  heloAccess,
  senderAccess,
  recipientAccess,
  dnsbl,
  helo,
  senderDomain,
  recipientDomain,
  spf,
  dkimDmarc,
  spam,
  uribl,
  virus,
  greylist,
  rateLimit,
  outboundGuard,
];
