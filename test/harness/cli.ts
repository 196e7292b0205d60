// `mailward ARGS` as an operator runs it: a real process running the sources (tsx). Asynchronous
// on purpose: a server answering the CLI's control socket may run in the test's own process.
import { runOwned } from './processes.ts';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');

/** The node arguments that run `mailward ARGS` from source. */
export const mailwardArgv = (args: readonly string[]): string[] => ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), ...args];

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `mailward ARGS` with `input` on its standard input; resolves when it exits. */
export function runMailward(args: readonly string[], input = ''): Promise<CliRun> {
  // In its own process group, SIGKILLed when this test process exits (a timed-out test included).
  return runOwned(undefined, process.execPath, mailwardArgv(args), { cwd: ROOT, input });
}
