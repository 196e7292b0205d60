// Read-only access to a spool that a running server owns (it holds the lock): what `mailward
// queue list|show` reads. Nothing here moves, changes or deletes a file; a corrupt file is only
// reported, and the server moves it aside when it next reads it.
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { isQueueId } from '../core/ids.ts';
import type { Envelope, RecipientState } from './envelope.ts';
import { loadMessageSync, SpoolCorruptError } from './reader.ts';

export interface InspectedMessage {
  readonly envelope: Envelope;
  readonly states: readonly RecipientState[];
}

export type InspectEntry = { readonly ok: true; readonly message: InspectedMessage } | { readonly ok: false; readonly id: string; readonly problem: string };

/** Streams every queued message (one file read at a time, so 400,000 do not sit in memory). */
export function* inspectSpool(dir: string): Generator<InspectEntry> {
  const queueDir = join(dir, 'queue');
  if (!existsSync(queueDir)) return;
  for (const bucket of readdirSync(queueDir).sort()) {
    const bdir = join(queueDir, bucket);
    let names: string[];
    try {
      names = readdirSync(bdir).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const entry = inspectFile(join(bdir, name), name);
      if (entry) yield entry;
    }
  }
}

/** One message by queue id, looked up in any bucket; undefined when it is not queued. */
export function inspectMessage(dir: string, id: string): InspectEntry | undefined {
  if (!isQueueId(id)) return undefined;
  const queueDir = join(dir, 'queue');
  if (!existsSync(queueDir)) return undefined;
  for (const bucket of readdirSync(queueDir)) {
    const path = join(queueDir, bucket, id);
    if (existsSync(path)) return inspectFile(path, id);
  }
  return undefined;
}

function inspectFile(path: string, id: string): InspectEntry | undefined {
  if (!isQueueId(id)) return { ok: false, id, problem: 'unexpected file name in the queue folder' };
  try {
    const m = loadMessageSync(path, id);
    return m ? { ok: true, message: { envelope: m.envelope, states: m.states } } : undefined;
  } catch (err) {
    return { ok: false, id, problem: err instanceof SpoolCorruptError ? err.reason : String(err) };
  }
}
