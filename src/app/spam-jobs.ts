// The spam filter's background work in a running server: learning from what users do with their
// mail (moves into and out of each Maildir's .Junk folder), the daily expiry of rare old Bayes
// tokens, and the purge of quarantined messages past checks.spam.quarantineDays.
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import type { Spool } from '../queue/spool.ts';
import type { Queue } from '../queue/queue.ts';
import { QuarantineAdmin } from '../queue/quarantine.ts';
import type { AdminResult } from '../queue/admin.ts';
import { isMaildir, learnFolderMoves, type SpamFilter } from '../spam/index.ts';
import { isStoreUnavailable, type Store } from '../store/store.ts';
import { runQueueCommand } from './delivery.ts';
import { openSpamFilter, spamSettings } from './spam-filter.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Files changed this long before a pass started are looked at again by the next pass: a rename
 * racing the folder walk, and file times a little behind the clock, are not missed. */
const SINCE_SLACK_MS = 10_000;

export interface SpamJobsOptions {
  readonly config: Config;
  readonly store: Store;
  /** Default: a filter over `store` with the config's checks.spam settings. */
  readonly filter?: SpamFilter;
  readonly log: Logger;
  readonly clock?: () => number;
  /**
   * The server's own spool (and schedule): the purge works on it directly. Without, the purge
   * goes through the control socket of the server that holds the spool, or opens it when none does.
   */
  readonly spool?: Spool;
  readonly queue?: Queue;
  /** Between two passes over the users' Junk folders (default 15 minutes). */
  readonly folderIntervalMs?: number;
  /** Between two looks at the quarantine's age and the expiry's day (default 1 hour). */
  readonly houseKeepingIntervalMs?: number;
  /** Before the first pass (default 1 minute: not in the way of a server starting up). */
  readonly firstDelayMs?: number;
  /** The Junk folder's name in each Maildir++ tree (default ".Junk"). */
  readonly junk?: string;
}

export interface FolderPassReport {
  readonly mailboxes: number;
  /** Mailboxes with changes since the last pass, whose folders were read. */
  readonly read: number;
  readonly learned: number;
  readonly failed: number;
  /** Only files changed since this time were looked at (undefined: the first pass, all of them). */
  readonly since: number | undefined;
}

export interface SpamJobs {
  /** One pass over every mailbox's folders now (the timer's work); never throws. */
  learnFolders(): Promise<FolderPassReport | undefined>;
  /** Deletes quarantined messages past the retention now; never throws. */
  purgeQuarantine(): Promise<AdminResult | undefined>;
  /** Expires Bayes tokens if no node did so today; never throws. Resolves whether it ran. */
  expireTokens(): Promise<boolean>;
  stop(): Promise<void>;
}

/** Every local mailbox's Maildir: <mail root>/<domain>/<local>/Maildir (see delivery/maildir.ts). */
export async function localMaildirs(mailRoot: string): Promise<string[]> {
  const out: string[] = [];
  const dirs = async (p: string): Promise<string[]> =>
    (await readdir(p, { withFileTypes: true }).catch(() => []))
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  for (const domain of await dirs(mailRoot)) {
    for (const local of await dirs(path.join(mailRoot, domain))) {
      const md = path.join(mailRoot, domain, local, 'Maildir');
      if (await isMaildir(md)) out.push(md);
    }
  }
  return out;
}

/**
 * Whether anything in a Maildir++ tree changed since `since`: a file delivered, moved between
 * folders or flagged changes its folder's cur/ or new/ entry list, and with it that folder's
 * ctime. Mailboxes nobody touched are skipped without reading a message.
 */
export async function changedSince(maildir: string, since: number): Promise<boolean> {
  const folders = [maildir, ...(await readdir(maildir, { withFileTypes: true })).filter((e) => e.isDirectory() && e.name.startsWith('.')).map((e) => path.join(maildir, e.name))];
  for (const f of folders) {
    for (const sub of ['cur', 'new']) {
      const st = await stat(path.join(f, sub)).catch(() => undefined);
      if (st && st.ctimeMs >= since) return true;
    }
  }
  return false;
}

/** The time of the last complete folder pass, kept beside the mailboxes so a restart goes on from it. */
class PassMark {
  constructor(readonly file: string) {}

  async read(): Promise<number | undefined> {
    try {
      const v = (JSON.parse(await readFile(this.file, 'utf8')) as { since?: unknown }).since;
      return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
    } catch {
      return undefined; // none yet, or unreadable: one full pass, which is harmless
    }
  }

  async write(since: number): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ since, at: new Date(since).toISOString() })}\n`);
    await rename(tmp, this.file);
  }
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function startSpamJobs(opts: SpamJobsOptions): SpamJobs {
  const { config, store, log } = opts;
  const clock = opts.clock ?? Date.now;
  const settings = spamSettings(config);
  const filter = opts.filter ?? openSpamFilter(config, store, { settings, clock });
  const mark = new PassMark(path.join(config.dataDir, 'spam-folders.json'));
  const timers: NodeJS.Timeout[] = [];
  const running = new Set<Promise<unknown>>();
  let stopped = false;

  // One run of a job at a time; a tick that finds it still running is skipped.
  const once = <T>(fn: () => Promise<T>): (() => Promise<T | undefined>) => {
    let current: Promise<T> | undefined;
    return () => {
      if (stopped) return Promise.resolve(undefined);
      if (current) return current;
      const p = fn().finally(() => {
        current = undefined;
        running.delete(p);
      });
      current = p;
      running.add(p);
      return p;
    };
  };

  const learnFolders = once(async (): Promise<FolderPassReport | undefined> => {
    const startedAt = clock();
    const since = await mark.read();
    let learned = 0;
    let failed = 0;
    let read = 0;
    let maildirs: string[] = [];
    let complete = true;
    const errors: string[] = [];
    try {
      maildirs = await localMaildirs(config.paths.mail);
      for (const md of maildirs) {
        try {
          if (since !== undefined && !(await changedSince(md, since))) continue;
          read++;
          const s = await learnFolderMoves(filter, md, { ...(opts.junk ? { junk: opts.junk } : {}), ...(since !== undefined ? { since } : {}) });
          learned += s.learned + s.relearned;
          failed += s.failed;
          for (const f of s.failures) if (errors.length < 5) errors.push(`${f.source}: ${f.error}`);
        } catch (err) {
          // The store is gone: the other mailboxes would fail the same way.
          if (isStoreUnavailable(err)) throw err;
          failed++;
          complete = false;
          if (errors.length < 5) errors.push(`${md}: ${errText(err)}`);
        }
      }
    } catch (err) {
      log.error({ event: 'spam-folders', err: errText(err), ...(errors.length > 0 ? { errors } : {}) }, 'learning from the Junk folders failed; the next pass tries again');
      return undefined;
    }
    // Advanced only when every mailbox could be read: a failed one is looked at again next time.
    if (complete) {
      try {
        await mark.write(startedAt - SINCE_SLACK_MS);
      } catch (err) {
        errors.push(`${mark.file}: ${errText(err)}`);
      }
    }
    const report: FolderPassReport = { mailboxes: maildirs.length, read, learned, failed, since };
    const fields = { event: 'spam-folders', ...report, ...(since !== undefined ? { since: new Date(since).toISOString() } : {}), ...(errors.length > 0 ? { errors } : {}) };
    if (errors.length > 0) log.warn(fields, `learned ${learned} message(s) from users' Junk folders; some could not be read`);
    else log.info(fields, `learned ${learned} message(s) from users' Junk folders`);
    return report;
  });

  const purgeQuarantine = once(async (): Promise<AdminResult | undefined> => {
    const receivedBefore = clock() - settings.quarantineDays * DAY;
    try {
      const r = opts.spool
        ? await new QuarantineAdmin(opts.spool, opts.queue, log, clock).run('delete', { receivedBefore })
        : await runQueueCommand(config, { op: 'quarantine-delete', receivedBefore });
      if (r.changed > 0) log.info({ event: 'quarantine-purge', deleted: r.changed, days: settings.quarantineDays }, `deleted ${r.changed} quarantined message(s) older than ${settings.quarantineDays} days (checks.spam.quarantineDays)`);
      return { matched: r.matched, changed: r.changed, missing: r.missing };
    } catch (err) {
      log.error({ event: 'quarantine-purge', err: errText(err) }, 'purging the quarantine failed; the next run tries again');
      return undefined;
    }
  });

  const expireTokens = once(async (): Promise<boolean> => {
    try {
      // Once a day across every node sharing the store (the key outlives the day a little).
      const key = `spam:expired:${new Date(clock()).toISOString().slice(0, 10)}`;
      if (!(await store.setIfAbsent(key, String(clock()), 2 * DAY))) return false;
      let r;
      try {
        r = await filter.expire();
      } catch (err) {
        // Let the next hourly look (here or on another node) try again today.
        await store.del(key).catch(() => undefined);
        throw err;
      }
      log.info({ event: 'bayes-expire', ...r }, `Bayes expiry: ${r.dropped} of ${r.before} token(s) dropped`);
      return true;
    } catch (err) {
      log.error({ event: 'bayes-expire', err: errText(err) }, 'Bayes token expiry failed; it runs again within the hour');
      return false;
    }
  });

  const every = (first: number, interval: number, fn: () => Promise<unknown>): void => {
    const tick = (): void => void fn();
    const t = setTimeout(() => {
      tick();
      const i = setInterval(tick, interval);
      i.unref();
      timers.push(i);
    }, first);
    t.unref();
    timers.push(t);
  };
  const first = opts.firstDelayMs ?? MINUTE;
  const house = opts.houseKeepingIntervalMs ?? HOUR;
  every(first, opts.folderIntervalMs ?? 15 * MINUTE, learnFolders);
  every(first, house, purgeQuarantine);
  every(first + 4 * MINUTE, house, expireTokens);

  return {
    learnFolders,
    purgeQuarantine,
    expireTokens: async () => (await expireTokens()) === true,
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      await Promise.allSettled([...running]);
    },
  };
}
