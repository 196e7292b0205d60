// Queues a message the server writes itself (a bounce, a guard alert): one spool transaction,
// removed again if it cannot be made durable. Resolves to the queue id.
import type { NewEnvelope } from './envelope.ts';

/** What a spool offers for writing (the Spool itself, or a stand-in in tests). */
export interface SpoolBegin {
  begin(env: NewEnvelope): { readonly id: string; write(chunk: Buffer): Promise<void>; commit(): Promise<void>; abort(): Promise<void> };
}

/**
 * The listener names the report jobs write into their envelopes (TLS-RPT, DMARC aggregate): mail
 * this server wrote, which the router signs with the From domain's DKIM key as the RFCs ask
 * (RFC 8460 §5.3 "MUST be DKIM-signed"; RFC 7489 §7.2.1.1 via the DMARC of the report domain).
 */
export const TLS_REPORT_LISTENER = 'tls-report';
export const DMARC_REPORT_LISTENER = 'dmarc-report';

export async function queueGenerated(spool: SpoolBegin, env: NewEnvelope, bytes: Buffer): Promise<string> {
  const w = spool.begin(env);
  try {
    await w.write(bytes);
    await w.commit();
  } catch (err) {
    await w.abort().catch(() => undefined);
    throw err;
  }
  return w.id;
}
