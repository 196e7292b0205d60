// A list file an operator edits while the server runs (access maps, greylisting whitelist): read
// and checked at start (a bad file stops the start with the setting named), then re-read when
// its stat changes, looked at most once a second. A file with errors is never half-applied.
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { CheckEnv } from '../../pipeline/check.ts';

export interface Parsed<T> {
  readonly value: T;
  /** "line 3: …" for each line that could not be read; any problem keeps the old contents. */
  readonly problems: readonly string[];
}

export interface WatchedFileOptions<T> {
  /** The config key, e.g. `checks.sender-access.file`, for errors. */
  readonly setting: string;
  readonly check: string;
  readonly path: string;
  readonly parse: (text: string) => Parsed<T>;
  /** How to write a good file, for error messages. */
  readonly fix: string;
  readonly env: Pick<CheckEnv, 'clock' | 'log'>;
}

const RECHECK_MS = 1000;

const signatureOf = (st: { ino: number; size: number; mtimeMs: number }): string => `${st.ino}:${st.size}:${st.mtimeMs}`;

export class WatchedFile<T> {
  private value: T;
  private signature: string;
  private checkedAt: number;
  private pending: Promise<void> | undefined;

  constructor(private readonly o: WatchedFileOptions<T>) {
    let text: string;
    try {
      // Stat before reading: a change in between is then seen (and read) at the next look.
      this.signature = signatureOf(statSync(o.path));
      text = readFileSync(o.path, 'utf8');
    } catch (err) {
      throw new Error(`${o.setting}: cannot read '${o.path}': ${(err as Error).message}. Fix: create the file (it may be empty) or correct the path.`, { cause: err });
    }
    const parsed = o.parse(text);
    if (parsed.problems.length > 0) throw new Error(`${o.setting}: '${o.path}' ${parsed.problems.join('; ')}. Fix: ${o.fix}`);
    this.value = parsed.value;
    this.checkedAt = o.env.clock();
  }

  /** The contents as last read, without looking at the file. */
  peek(): T {
    return this.value;
  }

  /** The contents, re-read first if the file changed (looked at most once a second). */
  async current(): Promise<T> {
    const now = this.o.env.clock();
    if (now < this.checkedAt || now - this.checkedAt >= RECHECK_MS) {
      this.checkedAt = now;
      this.pending ??= this.reload().finally(() => {
        this.pending = undefined;
      });
    }
    if (this.pending) await this.pending;
    return this.value;
  }

  private async reload(): Promise<void> {
    const { path, check, env } = this.o;
    let sig: string;
    try {
      sig = signatureOf(await stat(path));
    } catch (err) {
      if (this.signature !== 'missing') env.log.error({ check, file: path, err: (err as Error).message }, 'list file unreadable; keeping the entries last read');
      this.signature = 'missing';
      return;
    }
    if (sig === this.signature) return;
    this.signature = sig;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      env.log.error({ check, file: path, err: (err as Error).message }, 'list file unreadable; keeping the entries last read');
      return;
    }
    const parsed = this.o.parse(text);
    if (parsed.problems.length > 0) {
      // An operator mid-edit must not open or close the gate by accident.
      env.log.error({ check, file: path, problems: parsed.problems }, `list file has errors; keeping the entries last read. Fix: ${this.o.fix}`);
      return;
    }
    this.value = parsed.value;
    env.log.info({ check, file: path }, 'list file reloaded');
  }
}
