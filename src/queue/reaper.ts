// Removes the files of deleted (journaled) messages in the background, two at a time so the thread
// pool keeps room for arriving mail; then fsyncs the folders and empties the journal. An id stays
// journaled until its removal is durable, so no crash brings a deleted message back (0011).
import { unlink } from 'node:fs/promises';
import { setImmediate as turn } from 'node:timers/promises';
import { dirname } from 'node:path';
import type { Logger } from '../observe/log.ts';
import { fsyncPath } from './dirsync.ts';
import type { DeletionJournal } from './journal.ts';

export interface ReaperOptions {
  /** Where the file of `id` may be, the most likely place first. */
  readonly paths: (id: string, hint: string | undefined) => readonly string[];
  readonly journal: DeletionJournal;
  readonly fsync: boolean;
  /** Unlinks under way at once; 0 pauses (tests that need the files to stay). */
  readonly concurrency: number;
  readonly log: Logger;
  /** Ids whose files are durably gone: they may leave the journal. */
  readonly gone: (ids: readonly string[]) => void;
  /** True while some id must stay journaled (then the journal is not emptied). */
  readonly stillNeeded: () => boolean;
}

export class Reaper {
  readonly #o: ReaperOptions;
  // Work to do: ids and where each probably is; #head is the next one.
  #ids: string[] = [];
  #hints: Array<string | undefined> = [];
  #head = 0;
  #running = 0;
  #concurrency: number;
  // Unlinked, not yet made durable by a folder fsync.
  #done: string[] = [];
  readonly #dirs = new Set<string>();
  #finishing: Promise<void> | undefined;
  #stopped = false;
  #idle: Array<() => void> = [];
  #stopWaiters: Array<() => void> = [];
  /** Files removed so far. */
  removed = 0;

  constructor(opts: ReaperOptions) {
    this.#o = opts;
    this.#concurrency = opts.concurrency;
  }

  /** Ids waiting for their files to go (queued or under way). */
  get pending(): number {
    return this.#ids.length - this.#head + this.#running;
  }

  /** Queues the removal of `id`'s file (`hint`: the area folder it was last seen in). */
  add(id: string, hint?: string): void {
    this.#ids.push(id);
    this.#hints.push(hint);
    this.#kick();
  }

  /**
   * Takes over what a previous process left: ids whose files were found (with their paths' area),
   * ids whose files are gone already, and every folder they may have been in: the removals of a
   * process that died may not be durable, so those folders are fsync'd before the journal empties.
   */
  adopt(found: ReadonlyArray<readonly [string, string]>, gone: readonly string[], dirs: readonly string[]): void {
    for (const d of dirs) this.#dirs.add(d);
    for (const id of gone) this.#done.push(id);
    for (const [id, hint] of found) {
      this.#ids.push(id);
      this.#hints.push(hint);
    }
    this.#kick();
  }

  /**
   * Removes these files now, one after another, and resolves when they are gone (not yet
   * durable: their ids leave the journal with the next folder fsyncs). For a delete of a few
   * messages, which should not wait behind a large removal under way.
   */
  async removeNow(entries: ReadonlyArray<readonly [string, string | undefined]>): Promise<void> {
    if (this.#concurrency === 0) {
      // Paused (tests of what a crash leaves): they wait like the others.
      for (const [id, hint] of entries) this.add(id, hint);
      return;
    }
    for (const [id, hint] of entries) await this.#removeOne(id, hint);
    this.#kick();
  }

  /** Changes how many unlinks run at once (the CLI without a server goes at full speed). */
  setConcurrency(n: number): void {
    this.#concurrency = n;
    this.#kick();
  }

  /** Resolves when every queued removal is done and durable and the journal emptied if it can be. */
  whenIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops after the unlinks under way; what is left stays journaled for the next start. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#running > 0) await new Promise<void>((r) => this.#stopWaiters.push(r));
    await this.#finishing;
    for (const w of this.#idle.splice(0)) w();
  }

  #isIdle(): boolean {
    return this.#head >= this.#ids.length && this.#running === 0 && this.#finishing === undefined && this.#done.length === 0;
  }

  #kick(): void {
    // Paused (concurrency 0): nothing changes on disk, as if the process had died.
    if (this.#stopped || this.#concurrency === 0) return;
    while (this.#running < this.#concurrency && this.#head < this.#ids.length) {
      const i = this.#head++;
      const id = this.#ids[i]!;
      const hint = this.#hints[i];
      this.#running++;
      void this.#removeOne(id, hint).finally(() => {
        this.#running--;
        if (this.#stopped) {
          if (this.#running === 0) for (const w of this.#stopWaiters.splice(0)) w();
          return;
        }
        this.#kick();
      });
    }
    if (this.#head >= this.#ids.length && this.#ids.length > 0) {
      // Everything handed out: let the arrays go (300,000 ids are a few MB).
      this.#ids = [];
      this.#hints = [];
      this.#head = 0;
    }
    if (this.#running === 0 && this.#head >= this.#ids.length && this.#finishing === undefined) {
      if (this.#done.length > 0 || this.#dirs.size > 0) {
        this.#finishing = this.#finish().finally(() => {
          this.#finishing = undefined;
          this.#kick();
        });
      } else if (this.#isIdle()) {
        for (const w of this.#idle.splice(0)) w();
      }
    }
  }

  async #removeOne(id: string, hint: string | undefined): Promise<void> {
    for (const path of this.#o.paths(id, hint)) {
      try {
        await unlink(path);
        this.removed++;
        this.#dirs.add(dirname(path));
        this.#done.push(id);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        // Left journaled (and so never delivered, and the journal not emptied); the next start
        // tries again.
        this.#o.log.error({ event: 'spool-remove-error', path, err }, 'cannot remove a deleted message file; it stays in the deletion journal');
        return;
      }
    }
    // In no folder: removed already (by a previous process, or by a delivery that finished).
    this.#done.push(id);
  }

  /** Makes the removals durable (folder fsyncs), releases their ids, and empties the journal when nothing is left. */
  async #finish(): Promise<void> {
    const done = this.#done;
    const dirs = [...this.#dirs];
    this.#done = [];
    this.#dirs.clear();
    try {
      if (this.#o.fsync) for (const d of dirs) await fsyncPath(d);
    } catch (err) {
      // Not known to be durable: keep them journaled (hidden); the next start removes them again.
      this.#o.log.error({ event: 'spool-remove-error', err }, 'cannot fsync a queue folder after removals; the deletion journal is kept');
      return;
    }
    // In slices: releasing 300,000 ids at once would hold up the event loop for tens of ms.
    for (let i = 0; i < done.length; i += 8192) {
      this.#o.gone(done.slice(i, i + 8192));
      if (i + 8192 < done.length) await turn();
    }
    try {
      const emptied = await this.#o.journal.truncateIf(this.#o.stillNeeded);
      if (emptied) this.#o.log.info({ event: 'spool-journal-emptied', path: this.#o.journal.path, removed: this.removed }, 'every deleted message file is gone; deletion journal emptied');
    } catch (err) {
      this.#o.log.error({ event: 'spool-remove-error', path: this.#o.journal.path, err }, 'cannot empty the deletion journal; it is tried again after the next delete');
    }
  }
}
