// Queues a message the server writes itself (a bounce, a guard alert): one spool transaction,
// removed again if it cannot be made durable. Resolves to the queue id.
import type { NewEnvelope } from './envelope.ts';

/** What a spool offers for writing (the Spool itself, or a stand-in in tests). */
export interface SpoolBegin {
  begin(env: NewEnvelope): { readonly id: string; write(chunk: Buffer): Promise<void>; commit(): Promise<void>; abort(): Promise<void> };
}

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
