// Read-only access to a spool that a running server may own (it holds the lock): what `mailward
// queue list|show` reads. Nothing here moves, changes or deletes a file; a corrupt file is only
// reported, and the server moves it aside when it next reads it. Deleted messages whose files
// still wait for removal (deleted.log) are skipped, as the server skips them.
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { isQueueId } from '../core/ids.ts';
import type { Envelope, RecipientState } from './envelope.ts';
import { readJournalSync } from './journal.ts';
import { readHoldsSync } from './holds.ts';
import { loadMessageSync, SpoolCorruptError } from './reader.ts';
import type { SpoolArea } from './spool.ts';

export interface InspectedMessage {
  readonly envelope: Envelope;
  readonly states: readonly RecipientState[];
  /** On hold (in hold/, or marked in held.log): never scheduled until released. */
  readonly held: boolean;
}

export type InspectEntry = { readonly ok: true; readonly message: InspectedMessage } | { readonly ok: false; readonly id: string; readonly problem: string };

const AREAS: readonly SpoolArea[] = ['queue', 'hold'];

/**
 * Streams every message in queue/ and then hold/ (or only `areas`), one file read at a time, so
 * 400,000 messages never sit in memory: a caller that counts keeps only its counters.
 */
export function* inspectSpool(dir: string, areas: readonly SpoolArea[] = AREAS): Generator<InspectEntry> {
  // Read before the folders: an id journaled later is one whose file may still be listed, as if
  // the listing had come a moment earlier.
  const deleted = readJournalSync(dir);
  const marked = readHoldsSync(dir);
  // queue/ also holds the files of messages held by a mark.
  const walk: readonly SpoolArea[] = areas.includes('hold') && !areas.includes('queue') && marked.size > 0 ? [...areas, 'queue'] : areas;
  for (const area of walk) {
    const areaDir = join(dir, area);
    if (!existsSync(areaDir)) continue;
    for (const bucket of readdirSync(areaDir).sort()) {
      const bdir = join(areaDir, bucket);
      let names: string[];
      try {
        names = readdirSync(bdir).sort();
      } catch {
        continue;
      }
      for (const name of names) {
        if (deleted.has(name)) continue;
        // A file held by a mark is in queue/ but listed as held (with hold/ when both are asked).
        const held = area === 'hold' || marked.has(name);
        if (!areas.includes(held ? 'hold' : area)) continue;
        const entry = inspectFile(join(bdir, name), name, held);
        if (entry) yield entry;
      }
    }
  }
}

/** One message by queue id, looked up in queue/ and hold/; undefined when it is not queued. */
export function inspectMessage(dir: string, id: string): InspectEntry | undefined {
  if (!isQueueId(id) || readJournalSync(dir).has(id)) return undefined;
  for (const area of AREAS) {
    // The bucket is the id's 8th character (see spool.ts); a file elsewhere is not a message.
    const path = join(dir, area, id[7]!, id);
    if (existsSync(path)) return inspectFile(path, id, area === 'hold' || readHoldsSync(dir).has(id));
  }
  return undefined;
}

function inspectFile(path: string, id: string, held: boolean): InspectEntry | undefined {
  if (!isQueueId(id)) return { ok: false, id, problem: 'unexpected file name in the queue folder' };
  try {
    const m = loadMessageSync(path, id);
    return m ? { ok: true, message: { envelope: m.envelope, states: m.states, held } } : undefined;
  } catch (err) {
    return { ok: false, id, problem: err instanceof SpoolCorruptError ? err.reason : String(err) };
  }
}
