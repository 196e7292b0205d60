// What a message asks of outbound TLS (RFC 8689): REQUIRETLS in its MAIL FROM ("require": only
// over TLS verified by MTA-STS or DANE, to a next hop that offers REQUIRETLS), or a
// "TLS-Required: No" header field ("relaxed": a failed MTA-STS or DANE policy does not stop it;
// STARTTLS is still used whenever offered). REQUIRETLS wins over the header field (§5), so the
// header can never weaken a REQUIRETLS message.
import type { DeliverableMessage } from './transport.ts';
import { parseHeaderFields, readHeaderBlock } from './headers.ts';

export type TlsDemand = 'require' | 'relaxed' | 'normal';

/** The TLS-Required header field says "No" (RFC 8689 §5; compared without case, spaces trimmed). */
export function saysTlsNotRequired(fields: ReadonlyArray<readonly [string, string]>): boolean {
  return fields.some(([name, value]) => name.toLowerCase() === 'tls-required' && value.trim().toLowerCase() === 'no');
}

/** The message's demand; the header block is read only for mail without REQUIRETLS. */
export async function tlsDemand(msg: DeliverableMessage): Promise<TlsDemand> {
  if (msg.envelope.requireTls === true) return 'require';
  try {
    return saysTlsNotRequired(parseHeaderFields(await readHeaderBlock(msg.body()))) ? 'relaxed' : 'normal';
  } catch {
    // An unreadable message fails its delivery later anyway; it gets no relief from policy.
    return 'normal';
  }
}
