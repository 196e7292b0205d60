// The relay reason a message carries in the spool names why mail may leave for a foreign domain
// (`login:…`, `trusted-network:…`) or that a local alias forwards it outside (`forward:<alias>`).
// Forwarded mail is outbound mail that is not ours: it is not signed with our DKIM keys and a
// refusal is not bounced to its (unverified) sender.

export const FORWARD_REASON = 'forward:';
/** A bounce to one of our SRS addresses, on its way back to the original sender: `srs:<domain>`. */
export const SRS_REASON = 'srs:';

/** True when every reason in the comma-joined list is a forward (or an SRS return): nobody we know sent it out. */
export function onlyForwarded(relayReason: string | undefined): boolean {
  if (relayReason === undefined || relayReason === '') return false;
  return relayReason.split(',').every((r) => r.startsWith(FORWARD_REASON) || r.startsWith(SRS_REASON));
}
