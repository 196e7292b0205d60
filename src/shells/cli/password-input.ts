// Reads a password for `user add` / `user passwd` without putting it on the command line (where
// `ps` and shell history would show it): from a terminal prompt with echo off, or from stdin.
import { createInterface } from 'node:readline';

export async function readPassword(opts: { stdin: boolean }): Promise<string> {
  if (opts.stdin || !process.stdin.isTTY) return readFirstLine();
  const first = await promptHidden('Password: ');
  const again = await promptHidden('Again: ');
  if (first !== again) throw new Error('the two passwords differ; nothing was changed');
  return first;
}

async function readFirstLine(): Promise<string> {
  const rl = createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    rl.close();
    return line;
  }
  return '';
}

function promptHidden(question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const out = rl as unknown as { _writeToOutput: (s: string) => void };
    let asked = false;
    out._writeToOutput = (s: string) => {
      // Show the question once, then nothing of what is typed.
      if (!asked) {
        process.stderr.write(s);
        asked = true;
      }
    };
    rl.question(question, (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}
