// Learning from what users do with their mail: a message the filter passed that the user moved
// into the Junk folder is learned as spam; a message the filter marked as spam that the user
// moved out of Junk is learned as ham. Reads a Maildir++ tree (INBOX plus .Folder subfolders).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isStoreUnavailable } from '../store/store.ts';
import type { SpamFilter } from './filter.ts';
import { parseHeaderBlock, splitMessage } from './mime.ts';
import { isMaildir, readMessages } from './sources.ts';
import type { LearnSummary } from './train.ts';

export interface FolderMoveOptions {
  /** The Junk folder's name in the tree (default ".Junk"). */
  readonly junk?: string;
  /** Folders whose messages say nothing about the user's judgement (default Trash, Sent, Drafts). */
  readonly ignore?: readonly string[];
  /** Only files changed (moved, flagged) at or after this time, ms since the epoch. */
  readonly since?: number;
}

/** Our own verdict in a delivered copy: X-Spam-Flag / X-Spam-Status, as statusFields (core/spam-verdict.ts) wrote them
 * (the session strips any the sender sent). Undefined when the message was never scored. */
export function markedSpam(raw: Buffer): boolean | undefined {
  const { head } = splitMessage(raw, 256 * 1024);
  let verdict: boolean | undefined;
  for (const [name, value] of parseHeaderBlock(head)) {
    const n = name.toLowerCase();
    if (n === 'x-spam-flag') return /^\s*yes\b/i.test(value);
    if (n === 'x-spam-status') verdict = /^\s*yes\b/i.test(value);
  }
  return verdict;
}

/**
 * Walks one mailbox's Maildir and learns the user's corrections. Idempotent: a message learned
 * before with the same label is left as it is (one store read), so this can run on a timer.
 */
export async function learnFolderMoves(filter: SpamFilter, maildir: string, opts: FolderMoveOptions = {}): Promise<LearnSummary> {
  const t0 = performance.now();
  const junk = opts.junk ?? '.Junk';
  const ignore = new Set(opts.ignore ?? ['.Trash', '.Sent', '.Drafts', '.Deleted Messages', '.Sent Messages']);
  const c = { messages: 0, learned: 0, relearned: 0, already: 0, forgotten: 0, notLearned: 0, skipped: 0, failed: 0 };
  const failures: Array<{ source: string; error: string }> = [];
  const folders: Array<{ path: string; isJunk: boolean }> = [{ path: maildir, isJunk: false }];
  for (const e of await readdir(maildir, { withFileTypes: true })) {
    if (!e.isDirectory() || !e.name.startsWith('.') || ignore.has(e.name)) continue;
    const p = join(maildir, e.name);
    if (await isMaildir(p)) folders.push({ path: p, isJunk: e.name === junk });
  }
  const batch = filter.batch();
  for (const f of folders) {
    for await (const m of readMessages(f.path, opts.since !== undefined ? { changedSince: opts.since } : {})) {
      try {
        const marked = markedSpam(m.raw);
        // In Junk but passed by us: moved in by the user. Out of Junk but marked by us: moved out.
        let as: 'spam' | 'ham' | undefined = f.isJunk && marked !== true ? 'spam' : !f.isJunk && marked === true ? 'ham' : undefined;
        // Marked by us and in Junk, where we put it — unless the user had moved it out (learned
        // as ham) and now back in.
        if (f.isJunk && marked === true && (await filter.db.seen(filter.analyze(m.raw).digest)) === 'ham') as = 'spam';
        if (as === undefined) continue;
        c.messages++;
        c[await batch.learn(m.raw, as)]++;
      } catch (err) {
        if (isStoreUnavailable(err)) throw err;
        c.failed++;
        if (failures.length < 100) failures.push({ source: m.source, error: err instanceof Error ? err.message : String(err) });
      }
    }
  }
  await batch.flush();
  return { ...c, failures, seconds: (performance.now() - t0) / 1000 };
}
