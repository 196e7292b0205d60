// One queued message as the dashboard's incident console shows it: where it came from (client,
// login, HELO, listener, why it was allowed to relay), its header section as stored, and each
// recipient's delivery state (attempts, last reply, next try). Reads one file; changes nothing.
import { open } from 'node:fs/promises';
import { isQueueId } from '../core/ids.ts';
import type { Envelope, RecipientState } from './envelope.ts';
import { bodyOffset, decodePrefix, PREFIX_LENGTH } from './format.ts';
import { messageState, type MessageState } from './filter.ts';
import type { Spool } from './spool.ts';

/** Header bytes shown at most. */
const MAX_HEADER = 64 * 1024;

export interface MessageDetail {
  readonly envelope: Envelope;
  readonly state: MessageState;
  readonly recipients: ReadonlyArray<{ readonly address: string; readonly mailbox?: string; readonly transport: string } & RecipientState>;
  /** The message's header section as received (up to 64 KiB), or "" when unreadable. */
  readonly headers: string;
  readonly headersTruncated: boolean;
}

/** The message `id` in queue/ or hold/, or undefined when it is not queued. */
export async function messageDetail(spool: Spool, id: string): Promise<MessageDetail | undefined> {
  if (!isQueueId(id)) return undefined;
  for (const area of ['queue', 'hold'] as const) {
    // A message held by a mark is in "hold" for the spool, its file in queue/.
    if (area === 'queue' && spool.isMarkedHeld(id)) continue;
    const m = await spool.get(id, area);
    if (!m) continue;
    const { text, truncated } = await readHeaders(spool.messagePath(id, area));
    return {
      envelope: m.envelope,
      state: messageState(m.states, area === 'hold'),
      recipients: m.envelope.recipients.map((r, i) => ({ address: r.address, ...(r.mailbox !== undefined ? { mailbox: r.mailbox } : {}), transport: r.transport, ...m.states[i]! })),
      headers: text,
      headersTruncated: truncated,
    };
  }
  return undefined;
}

async function readHeaders(path: string): Promise<{ text: string; truncated: boolean }> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return { text: '', truncated: false };
  }
  try {
    const first = Buffer.alloc(PREFIX_LENGTH);
    await fh.read(first, 0, PREFIX_LENGTH, 0);
    const prefix = decodePrefix(first);
    if (typeof prefix === 'string') return { text: '', truncated: false };
    const want = Math.min(prefix.bodyLength, MAX_HEADER);
    const buf = Buffer.alloc(want);
    const { bytesRead } = await fh.read(buf, 0, want, bodyOffset(prefix));
    const bytes = buf.subarray(0, bytesRead);
    const end = bytes.indexOf('\r\n\r\n');
    return end >= 0 ? { text: bytes.subarray(0, end + 2).toString('utf8'), truncated: false } : { text: bytes.toString('utf8'), truncated: prefix.bodyLength > want };
  } finally {
    await fh.close();
  }
}
