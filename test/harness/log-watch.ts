// Follows the JSON log lines a `mailward serve` child writes on its standard output, so a test
// waits for an event (listening, started, …) instead of sleeping.
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export type LogLine = Record<string, unknown>;

export interface LogWatch {
  /** The first line that matches; rejects, with every line seen, if the process exits first. */
  readonly waitLog: (pred: (l: LogLine) => boolean) => Promise<LogLine>;
}

export function watchLog(child: ChildProcess): LogWatch {
  const logs: LogLine[] = [];
  let waiters: Array<() => void> = [];
  const wake = (): void => {
    const w = waiters;
    waiters = [];
    w.forEach((f) => f());
  };
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
      wake();
    } catch {
      // not a log line
    }
  });
  let gone = false;
  child.once('exit', () => {
    gone = true;
    wake();
  });
  return {
    waitLog: async (pred) => {
      for (;;) {
        const found = logs.find(pred);
        if (found) return found;
        if (gone) throw new Error(`mailward serve exited before the expected log line:\n${stderr}\n${JSON.stringify(logs)}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}
