// Hold marks, <spool>/held.log: an operator's hold of many messages without moving their files.
// "+<id>" holds a message, "-<id>" releases it; the last line for an id wins. A hold is durable
// (survives kill -9) once its batch is appended and fdatasync'd: one write and one fsync per
// batch, where moving 300,000 files into hold/ cost a rename and two folder fsyncs each
// (docs/decisions/0025-queue-control.md). The file is rewritten with only the live marks when it
// has grown to several times their number.
import { readFileSync } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isQueueId } from '../core/ids.ts';
import { fsyncPath } from './dirsync.ts';
import { AppendFile } from './append-file.ts';

export const HOLDS_FILE = 'held.log';

export const holdsPath = (spoolDir: string): string => join(spoolDir, HOLDS_FILE);

/**
 * Replays hold-mark text. Only whole lines of a sign and a queue id count: a crash during an
 * append leaves at most a shorter line (or zeros), which is neither; every batch starts with a
 * newline, so a torn line never runs into the next one.
 */
export function parseHolds(text: string, into: Set<string> = new Set()): { ids: Set<string>; lines: number } {
  let lines = 0;
  for (const line of text.split('\n')) {
    if (line.length !== 18) continue;
    const id = line.slice(1);
    if (!isQueueId(id)) continue;
    lines++;
    if (line[0] === '+') into.add(id);
    else if (line[0] === '-') into.delete(id);
  }
  return { ids: into, lines };
}

/** The held ids of the spool in `spoolDir`, read without the lock (operator tools). */
export function readHoldsSync(spoolDir: string): ReadonlySet<string> {
  let text: string;
  try {
    text = readFileSync(holdsPath(spoolDir), 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw err;
  }
  return parseHolds(text).ids;
}

/** Ids per append: one write and one fsync each, at most ~1.2 MB. */
const BATCH = 65_536;
/** Rewritten at open when the file has this many more lines than live marks (and twice as many). */
const COMPACT_SLACK = 4_096;

export class HoldJournal extends AppendFile {
  readonly #fsync: boolean;

  private constructor(path: string, fh: FileHandle, fsync: boolean) {
    super(path, fh);
    this.#fsync = fsync;
  }

  /**
   * Opens (creating) the file and replays it; compacts it first when mostly dead lines. A new
   * file's folder entry is made durable by the caller's fsync of the spool folder.
   */
  static async open(spoolDir: string, opts: { readonly fsync: boolean }): Promise<{ journal: HoldJournal; ids: Set<string> }> {
    const path = holdsPath(spoolDir);
    let text = '';
    try {
      text = readFileSync(path, 'latin1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const { ids, lines } = parseHolds(text);
    if (lines > 2 * ids.size + COMPACT_SLACK) {
      // Written aside and renamed over: a crash leaves the old file or the new, both whole.
      const tmp = `${path}.new`;
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile([...ids].map((id) => `+${id}\n`).join(''), 'latin1');
        if (opts.fsync) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      if (opts.fsync) await fsyncPath(spoolDir);
    }
    const fh = await open(path, 'a', 0o600);
    return { journal: new HoldJournal(path, fh, opts.fsync), ids };
  }

  /**
   * Appends `sign` lines for `ids` (one write, and one fsync unless `durable` is false) in
   * batches; resolves once they are durable.
   */
  append(sign: '+' | '-', ids: readonly string[], durable = true): Promise<void> {
    for (const id of ids) if (!isQueueId(id)) return Promise.reject(new Error(`not a queue id: ${JSON.stringify(id)}`));
    if (ids.length === 0) return Promise.resolve();
    return this.serial(async () => {
      for (let i = 0; i < ids.length; i += BATCH) {
        await this.writeAll(Buffer.from(`\n${sign}${ids.slice(i, i + BATCH).join(`\n${sign}`)}\n`, 'latin1'));
        if (durable && this.#fsync) await this.fh.datasync();
      }
    });
  }
}
