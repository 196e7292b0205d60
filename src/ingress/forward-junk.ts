// What a stranger's unwanted mail does at an alias that forwards outside (forwarding.junk,
// docs/decisions/0014-forwarding.md). Forwarding spam or mail whose From domain asks for DMARC
// quarantine/reject makes the next hop see our server sending it: our reputation pays, SES and
// big providers refuse it, and a refusal could only bounce to a likely forged sender. So the
// outside copies are kept back; local recipients still get the message (in Junk).
import type { RoutedRecipient } from './session.ts';
import type { VerdictTag } from '../core/verdict.ts';
import { FORWARD_REASON } from '../core/relay-reason.ts';

export type ForwardJunk = 'not-forwarded' | 'forwarded';

export interface ForwardJunkInput {
  readonly policy: ForwardJunk;
  /** The session's login: a login's own mail is never held back here. */
  readonly login: string | undefined;
  /** The content class decided at end of DATA ('spam', 'kill', 'ham' or undefined). */
  readonly contentClass: string | undefined;
  readonly tags: ReadonlySet<VerdictTag>;
  readonly routes: readonly RoutedRecipient[];
  /** The transaction's relay reasons: `forward:<address>` for each local alias that forwards outside. */
  readonly relayReasons: ReadonlySet<string>;
}

/** The routes to keep and why the outside ones were dropped, or undefined to keep them all. */
export function forwardsKeptBack(i: ForwardJunkInput): { keep: RoutedRecipient[]; dropped: RoutedRecipient[]; reason: string } | undefined {
  const forwards = new Set([...i.relayReasons].filter((r) => r.startsWith(FORWARD_REASON)).map((r) => r.slice(FORWARD_REASON.length)));
  if (i.policy === 'forwarded' || i.login !== undefined || forwards.size === 0) return undefined;
  const reason = i.contentClass === 'spam' || i.contentClass === 'kill' ? 'spam' : i.tags.has('dmarc-failed') ? 'dmarc-failed' : undefined;
  if (!reason) return undefined;
  const isForward = (r: RoutedRecipient): boolean => r.transport === 'remote' && forwards.has(r.address);
  const dropped = i.routes.filter(isForward);
  if (dropped.length === 0) return undefined;
  return { keep: i.routes.filter((r) => !isForward(r)), dropped, reason };
}
