// `mailward ARGS` as an operator runs it: a real process running the sources (tsx). Asynchronous
// on purpose: a server answering the CLI's control socket may run in the test's own process.
import { spawn } from 'node:child_process';
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
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, mailwardArgv(args), { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(input);
  });
}
