// `mailward learn --spam|--ham [--forget] PATH...` (sa-learn) and `mailward spam score FILE|-`
// (spamassassin -t): teach the Bayes filter from files, folders, Maildirs and mbox files, and show
// why one message scores what it scores. Both use the store the config names, which a running
// server shares (SQLite in WAL mode, or Redis), so they work while the server runs.
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Config } from '../../config/load.ts';
import { withStore } from './with-store.ts';
import { openSpamFilter, spamSettings } from '../../app/spam-filter.ts';
import { isStoreUnavailable, type Store } from '../../store/store.ts';
import { explain, formatExplanation, formatSummary, learnPaths, messageFiles, type SpamFilter } from '../../spam/index.ts';
import { CliError, EXIT, configFrom } from './index.ts';
import { createProgress, type ProgressStream } from './progress.ts';

/** Where a command writes: commander's output (redirected by buildProgram's caller in tests). */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
  /** stderr, for the progress line: a terminal only when process.stderr is one. */
  readonly errStream: ProgressStream;
}

export function outputOf(cmd: Command): CliOutput {
  const o = cmd.configureOutput();
  const out = (t: string): void => (o.writeOut ? o.writeOut(t) : void process.stdout.write(t));
  const err = (t: string): void => (o.writeErr ? o.writeErr(t) : void process.stderr.write(t));
  return { out, err, errStream: { isTTY: process.stderr.isTTY, write: err } };
}

/** Opens the configured store and a filter over it for `fn`; closes the store afterwards. */
export async function withFilter<T>(config: Config, fn: (filter: SpamFilter, store: Store) => Promise<T>): Promise<T> {
  const settings = spamSettings(config);
  return withStore(config, async (store) => {
    try {
      return await fn(openSpamFilter(config, store, { settings }), store);
    } catch (err) {
      if (isStoreUnavailable(err)) throw new CliError(`the ${err.backend} store stopped answering (store.${err.backend}): ${err.message}; what was learned so far is kept — run the command again when the store is back (learned messages are skipped)`);
      throw err;
    }
  });
}

/** Occurrences of "\nFrom " in an mbox (+1 for the first message): a cheap count for the progress line. */
async function mboxCount(path: string): Promise<number> {
  let n = 1;
  let tail = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    // The 5 bytes kept cannot hold a whole match, so none is counted twice.
    const buf = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk;
    for (let i = buf.indexOf('\nFrom '); i !== -1; i = buf.indexOf('\nFrom ', i + 1)) n++;
    tail = Buffer.from(buf.subarray(Math.max(0, buf.length - 5)));
  }
  return n;
}

async function fileCount(path: string): Promise<number> {
  const fh = await open(path, 'r');
  const head = Buffer.alloc(5);
  try {
    await fh.read(head, 0, 5, 0);
  } finally {
    await fh.close();
  }
  return head.toString('latin1') === 'From ' ? mboxCount(path) : 1;
}

/** About how many messages learnPaths will read under `paths` (the same walk, without parsing). */
export async function estimateMessages(paths: readonly string[]): Promise<number> {
  let n = 0;
  for (const p of paths) {
    try {
      for await (const file of messageFiles(p)) n += await fileCount(file).catch(() => 0);
    } catch {
      // Only an estimate for the progress line: learn itself reports what it cannot read.
    }
  }
  return n;
}

async function readInput(file: string): Promise<Buffer> {
  if (file !== '-') {
    try {
      return await readFile(file);
    } catch (err) {
      throw new CliError(`cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; give a message file, or - to read it from stdin`);
    }
  }
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

interface LearnOptions {
  spam?: boolean;
  ham?: boolean;
  forget?: boolean;
}

export function registerLearn(program: Command): void {
  program
    .command('learn')
    .description('teach the spam filter: learn messages as spam or ham (sa-learn); also while the server runs')
    .argument('<paths...>', 'message files, folders, Maildirs (cur/ and new/; name each .Folder to learn) and mbox files')
    .option('--spam', 'the messages are spam')
    .option('--ham', 'the messages are ham (wanted mail)')
    .option('--forget', 'take learned messages back out (whatever they were learned as)')
    .action(async (paths: string[], opts: LearnOptions, cmd: Command) => {
      const io = outputOf(cmd);
      if (opts.spam && opts.ham) throw new CliError('give --spam or --ham, not both', EXIT.usage);
      if (!opts.spam && !opts.ham && !opts.forget) throw new CliError('say what the messages are: --spam or --ham (or --forget to take them back out)', EXIT.usage);
      const config = configFrom(cmd);
      const progress = createProgress({ verb: opts.forget ? 'read' : 'learned', stream: io.errStream });
      if (progress.active) {
        // Counted beside the learning, so the line shows "of ~N" once the count is in.
        void estimateMessages(paths).then(
          (n) => progress.setTotal(n, true),
          () => undefined,
        );
      }
      const summary = await withFilter(config, (filter) =>
        learnPaths(filter, paths, {
          ...(opts.forget ? { forget: true } : { as: opts.spam ? 'spam' : 'ham' }),
          onProgress: (p) => progress.update(p.messages),
        }).finally(() => progress.finish()),
      );
      io.out(`${formatSummary(summary)}\n`);
      for (const f of summary.failures.slice(0, 20)) io.err(`${f.source}: ${f.error}\n`);
      if (summary.failures.length > 20) io.err(`... and ${summary.failed - 20} more failure(s)\n`);
      const handled = summary.learned + summary.relearned + summary.already + summary.forgotten + summary.notLearned;
      if (handled === 0) throw new CliError(`no message could be read from ${paths.map((p) => JSON.stringify(p)).join(' ')}; give message files, folders, Maildirs or mbox files`);
    });
}

export function registerSpam(program: Command): void {
  const spam = program.command('spam').description('the spam filter: score a message and see why');
  spam
    .command('score')
    .description('print the score of one message and the rules and Bayes tokens behind it (spamassassin -t)')
    .argument('<file>', 'the message file, or - to read it from stdin')
    .option('--authenticated', 'score it as mail submitted by a logged-in user of this server')
    .action(async (file: string, opts: { authenticated?: boolean }, cmd: Command) => {
      const io = outputOf(cmd);
      const config = configFrom(cmd);
      const thresholds = spamSettings(config);
      const raw = await readInput(file);
      if (raw.length === 0) throw new CliError(`${file === '-' ? 'stdin' : JSON.stringify(file)} is empty; give a whole message (header and body)`);
      const e = await withFilter(config, (filter) => explain(filter, raw, thresholds, { authenticated: opts.authenticated === true }));
      io.out(`${formatExplanation(e, thresholds)}\n`);
    });
}
