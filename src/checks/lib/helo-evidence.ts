// Whether the HELO/EHLO name may be judged at all. On the MX port it is a server's claim about
// itself and Postfix-style HELO rules apply. On submission (RFC 6409) and submissions (RFC 8314)
// the client is a user's program about to log in: it says what its machine is called
// (DESKTOP-AB12CD, localhost, or our own host name for webmail on this machine), which is no
// evidence of anything — the login is. So the HELO-name checks stay silent there, before and
// after AUTH; checks of the client address (dnsbl, client-access) are not affected.
import type { SessionFacts } from '../../pipeline/check.ts';

/** True when HELO-name rules apply to this session: on mx listeners only. */
export const heloNameCounts = (session: SessionFacts): boolean => session.listenerKind === 'mx';
