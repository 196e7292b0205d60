// The deletion journal, <spool>/deleted.log: one queue id per line. A delete is durable once its ids
// are appended and fsync'd; every reader skips them, their files go in the background (reaper.ts),
// and the journal is emptied once all are gone. docs/decisions/0011-queue-delete-at-scale.md.
import { readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isQueueId } from '../core/ids.ts';
import { AppendFile } from './append-file.ts';

export const JOURNAL_FILE = 'deleted.log';

export const journalPath = (spoolDir: string): string => join(spoolDir, JOURNAL_FILE);

/**
 * The ids in journal text. Only whole lines that are queue ids count: a crash during an append
 * leaves at most a shorter line, or zeros on some file systems, and neither is an id (ids have a
 * fixed length). Every batch starts with a newline, so a torn line never runs into the next id.
 */
export function parseJournal(text: string, into: Set<string> = new Set()): Set<string> {
  for (const line of text.split('\n')) if (line.length === 17 && isQueueId(line)) into.add(line);
  return into;
}

/** The journaled ids of the spool in `spoolDir`, read without taking the lock (operator tools). */
export function readJournalSync(spoolDir: string): ReadonlySet<string> {
  let text: string;
  try {
    text = readFileSync(journalPath(spoolDir), 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw err;
  }
  return text.length === 0 ? new Set() : parseJournal(text);
}

/** Ids per append: a batch is one write and one fsync, and at most ~1.2 MB. */
export const JOURNAL_BATCH = 65_536;

// Appends and truncation run one after another: a truncation must never drop a batch that is
// being written.
export class DeletionJournal extends AppendFile {
  readonly #fsync: boolean;
  #bytes: number;

  private constructor(path: string, fh: FileHandle, fsync: boolean, bytes: number) {
    super(path, fh);
    this.#fsync = fsync;
    this.#bytes = bytes;
  }

  /**
   * Opens (creating) the journal and reads the ids in it. A new file's folder entry is made
   * durable by the caller's fsync of the spool folder.
   */
  static async open(spoolDir: string, opts: { readonly fsync: boolean }): Promise<{ journal: DeletionJournal; ids: Set<string> }> {
    const path = journalPath(spoolDir);
    const fh = await open(path, 'a+', 0o600);
    try {
      const text = (await fh.readFile()).toString('latin1');
      return { journal: new DeletionJournal(path, fh, opts.fsync, Buffer.byteLength(text, 'latin1')), ids: parseJournal(text) };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Bytes in the file now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends `ids` with one write and one fsync; resolves once they are durable. */
  append(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    for (const id of ids) if (!isQueueId(id)) return Promise.reject(new Error(`not a queue id: ${JSON.stringify(id)}`));
    return this.serial(async () => {
      const data = Buffer.from(`\n${ids.join('\n')}\n`, 'latin1');
      await this.writeAll(data);
      this.#bytes += data.length;
      // fdatasync persists the new size too; the folder entry does not change.
      if (this.#fsync) await this.fh.datasync();
    });
  }

  /**
   * Empties the journal if `stillNeeded()` is false when its turn comes (after every append queued
   * before it). The caller makes sure every file it named is durably gone first.
   */
  truncateIf(stillNeeded: () => boolean): Promise<boolean> {
    return this.serial(async () => {
      if (stillNeeded() || this.#bytes === 0) return false;
      await this.fh.truncate(0);
      if (this.#fsync) await this.fh.sync();
      this.#bytes = 0;
      return true;
    });
  }
}
