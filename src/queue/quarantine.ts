// The spool's quarantine area (kill-level spam kept for review, never scheduled): release a
// message into the queue, delete it, by id or by age. Runs in the server (over the control socket,
// with the live schedule) or in the CLI on a stopped server's spool; the read-only helpers below
// work on a spool that a running server owns.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../observe/log.ts';
import { isQueueId } from '../core/ids.ts';
import type { AdminResult } from './admin.ts';
import { inspectSpool, type InspectEntry } from './inspect.ts';
import { readJournalSync } from './journal.ts';
import { loadMessageSync, SpoolCorruptError, BodyStream } from './reader.ts';
import type { Queue } from './queue.ts';
import { messageDueAt } from './schedule.ts';
import type { Spool, SpooledMessage } from './spool.ts';
import { createGate } from './gate.ts';

export type QuarantineOp = 'release' | 'delete';
export const QUARANTINE_OPS: readonly QuarantineOp[] = ['release', 'delete'];

/** Which quarantined messages: these ids, or all (optionally only those received before a time). */
export interface QuarantineSelection {
  readonly ids?: readonly string[];
  readonly all?: boolean;
  /** Only messages received before this time (ms since the epoch): the retention purge, --older-than. */
  readonly receivedBefore?: number;
}

/** Messages worked on at once: each is one rename or unlink (see PARALLEL in admin.ts). */
const PARALLEL = 32;
const PROGRESS_EVERY_MS = 500;

export class QuarantineAdmin {
  readonly #spool: Spool;
  readonly #queue: Queue | undefined;
  readonly #log: Logger;
  readonly #clock: () => number;

  /** `queue` is the running server's schedule; undefined when the CLI works on a stopped server's spool. */
  constructor(spool: Spool, queue: Queue | undefined, log: Logger, clock: () => number = Date.now) {
    this.#spool = spool;
    this.#queue = queue;
    this.#log = log;
    this.#clock = clock;
  }

  async run(op: QuarantineOp, sel: QuarantineSelection, progress?: (r: AdminResult) => void): Promise<AdminResult> {
    const result: AdminResult = { matched: 0, changed: 0, missing: 0 };
    let lastProgress = this.#clock();
    const gate = createGate(PARALLEL);
    const submit = async (m: SpooledMessage): Promise<void> => {
      result.matched++;
      await gate.run(() =>
        this.#apply(op, m).then(
          (changed) => {
            if (changed) result.changed++;
          },
          (err: unknown) => this.#log.error({ event: 'quarantine-admin-error', op, queueId: m.envelope.id, err: String(err) }, `quarantine ${op} failed for one message`),
        ),
      );
      if (progress && this.#clock() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = this.#clock();
        progress({ ...result });
      }
    };
    if (sel.ids !== undefined && sel.ids.length > 0) {
      for (const id of sel.ids) {
        const m = isQueueId(id) ? await this.#spool.get(id, 'quarantine') : undefined;
        if (!m) result.missing++;
        else if (sel.receivedBefore === undefined || m.envelope.receivedAt < sel.receivedBefore) await submit(m);
      }
    } else {
      if (!sel.all && sel.receivedBefore === undefined) throw new Error('no messages selected: give ids, all, or receivedBefore');
      for await (const m of this.#spool.list('quarantine')) {
        if (sel.receivedBefore === undefined || m.envelope.receivedAt < sel.receivedBefore) await submit(m);
      }
    }
    await gate.drain();
    this.#log.info({ event: 'quarantine-admin', op, ...result, ...(sel.ids ? { ids: sel.ids.length } : {}), ...(sel.receivedBefore !== undefined ? { receivedBefore: new Date(sel.receivedBefore).toISOString() } : {}) }, `quarantine ${op}: ${result.changed} of ${result.matched} message(s)`);
    return result;
  }

  async #apply(op: QuarantineOp, m: SpooledMessage): Promise<boolean> {
    const id = m.envelope.id;
    if (op === 'delete') {
      // Never scheduled, so no delivery pass can be under way: the file can simply go.
      const done = await this.#spool.discard(id, 'quarantine');
      if (done) this.#log.info({ event: 'quarantine-admin', op, queueId: id, from: m.envelope.mailFrom }, 'quarantined message deleted');
      return done;
    }
    const done = await this.#spool.move(id, 'quarantine', 'queue');
    if (done) {
      this.#log.info({ event: 'quarantine-admin', op, queueId: id, from: m.envelope.mailFrom }, 'released from quarantine');
      // As a release from hold (admin.ts): the live schedule learns of it at once; without a
      // server, the next start finds it in queue/.
      const due = messageDueAt(m.states, this.#clock());
      if (due !== undefined) this.#queue?.enqueue(id, due);
    }
    return done;
  }
}

// --- Read-only access, safe while a running server owns the spool ---------------------------

/** The file of a quarantined message (the bucket is the id's 8th character, as in spool.ts). */
export function quarantinePath(spoolDir: string, id: string): string {
  if (!isQueueId(id)) throw new Error(`not a queue id: ${JSON.stringify(id)}`);
  return join(spoolDir, 'quarantine', id[7]!, id);
}

/** Streams every quarantined message's envelope, one file read at a time. */
export function listQuarantine(spoolDir: string): Generator<InspectEntry> {
  return inspectSpool(spoolDir, ['quarantine']);
}

/** Whether the message is in the quarantine: its file is there and it is not deleted (journaled). */
function present(spoolDir: string, id: string): boolean {
  return isQueueId(id) && existsSync(quarantinePath(spoolDir, id)) && !readJournalSync(spoolDir).has(id);
}

/** One quarantined message's envelope; undefined when there is none with this id. */
export function inspectQuarantined(spoolDir: string, id: string): InspectEntry | undefined {
  if (!present(spoolDir, id)) return undefined;
  const path = quarantinePath(spoolDir, id);
  try {
    const m = loadMessageSync(path, id);
    return m ? { ok: true, message: { envelope: m.envelope, states: m.states, held: false } } : undefined;
  } catch (err) {
    return { ok: false, id, problem: err instanceof SpoolCorruptError ? err.reason : String(err) };
  }
}

/**
 * The message bytes of a quarantined message; the stream errors if they do not match the
 * recorded hash. A corrupt file is left where it is: the server moves it aside when it reads it.
 */
export function openQuarantined(spoolDir: string, id: string): BodyStream {
  return new BodyStream(quarantinePath(spoolDir, id), id, () => Promise.resolve());
}

/** The whole message, checked against its hash; undefined when it is no longer quarantined. */
export async function readQuarantined(spoolDir: string, id: string): Promise<Buffer | undefined> {
  if (!present(spoolDir, id)) return undefined;
  const parts: Buffer[] = [];
  try {
    for await (const c of openQuarantined(spoolDir, id)) parts.push(c as Buffer);
  } catch (err) {
    // Released or deleted between the look and the read.
    if (!existsSync(quarantinePath(spoolDir, id))) return undefined;
    throw err;
  }
  return Buffer.concat(parts);
}

/**
 * The message's header block (up to the empty line, at most `limit` bytes), without reading the
 * rest: what `mailward quarantine list|show` print. Undefined when the message is gone.
 */
export async function quarantinedHead(spoolDir: string, id: string, limit = 64 * 1024): Promise<string | undefined> {
  if (!isQueueId(id) || !existsSync(quarantinePath(spoolDir, id))) return undefined;
  const stream = openQuarantined(spoolDir, id);
  let buf = Buffer.alloc(0);
  try {
    for await (const c of stream) {
      buf = Buffer.concat([buf, c as Buffer]);
      // RFC 5322 §2.1: the header section ends at the first empty line.
      const end = buf.indexOf('\r\n\r\n');
      if (end !== -1) return buf.subarray(0, end + 2).toString('utf8');
      const lfEnd = buf.indexOf('\n\n');
      if (lfEnd !== -1) return buf.subarray(0, lfEnd + 1).toString('utf8');
      if (buf.length >= limit) return buf.subarray(0, limit).toString('utf8');
    }
  } catch {
    return undefined;
  } finally {
    stream.destroy();
  }
  return buf.toString('utf8');
}

/** The first value of header field `name` in a header block (unfolded, RFC 5322 §2.2.3). */
export function headerValue(head: string, name: string): string | undefined {
  const want = name.toLowerCase();
  const lines = head.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0 || /^[ \t]/.test(line) || line.slice(0, colon).trim().toLowerCase() !== want) continue;
    let value = line.slice(colon + 1);
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1]!)) value += ` ${lines[++i]!.trim()}`;
    return value.trim();
  }
  return undefined;
}
