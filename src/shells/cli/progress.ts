// A progress line for long CLI commands ("learned 1,200 of ~5,000 (400/s, 10s left)"): one line
// on a terminal, rewritten in place at most a few times a second, ended with a newline. When the
// stream is not a terminal (a pipe, a log file, cron) nothing at all is written.

/** Where the line goes: process.stderr, or anything with the same two members. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** What is counted, in the past tense: "learned", "deleted". */
  readonly verb: string;
  /** Default process.stderr. */
  readonly stream?: ProgressStream;
  /** Least time between two redraws (default 200 ms). */
  readonly intervalMs?: number;
  readonly clock?: () => number;
}

export interface Progress {
  /** Whether anything is written at all (the stream is a terminal). */
  readonly active: boolean;
  /** The total when known; `approximate` shows it as "~5,000". */
  setTotal(total: number, approximate?: boolean): void;
  /** Records `done` so far (and an optional note after the figures); redraws when due. */
  update(done: number, note?: string): void;
  /** Draws the last figures and ends the line, if a line was ever drawn. */
  finish(): void;
}

const num = (n: number): string => Math.round(n).toLocaleString('en-US');

function duration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The figures as one line; exported for tests and for callers that print a final line themselves. */
export function progressText(verb: string, done: number, elapsedMs: number, total?: { readonly n: number; readonly approximate: boolean }, note?: string): string {
  let text = `${verb} ${num(done)}`;
  if (total) text += ` of ${total.approximate ? '~' : ''}${num(Math.max(total.n, done))}`;
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const extra: string[] = [];
  if (elapsedMs >= 1000 || done > 0) extra.push(`${num(rate)}/s`);
  if (total && rate > 0 && total.n > done) extra.push(`${duration((total.n - done) / rate)} left`);
  if (extra.length > 0) text += ` (${extra.join(', ')})`;
  if (note) text += ` ${note}`;
  return text;
}

export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const active = stream.isTTY === true;
  const clock = opts.clock ?? Date.now;
  const interval = opts.intervalMs ?? 200;
  const start = clock();
  let total: { n: number; approximate: boolean } | undefined;
  let done = 0;
  let note: string | undefined;
  let drawnAt: number | undefined;
  let finished = false;
  const draw = (now: number): void => {
    drawnAt = now;
    // \r back to the start of the line, \x1b[K clears what a longer earlier line left behind.
    stream.write(`\r${progressText(opts.verb, done, now - start, total, note)}\x1b[K`);
  };
  return {
    active,
    setTotal(n, approximate = false) {
      total = { n, approximate };
    },
    update(n, text) {
      if (!active || finished) return;
      done = n;
      note = text;
      const now = clock();
      // The first line waits one interval too: a command done in a blink shows no progress.
      if (now - (drawnAt ?? start) >= interval) draw(now);
    },
    finish() {
      if (!active || finished) return;
      finished = true;
      if (drawnAt === undefined) return;
      draw(clock());
      stream.write('\n');
    },
  };
}
