// The yes/no question before a destructive command (queue delete, quarantine delete), asked on
// stderr and answered on stdin, so `yes | mailward ...` and scripts with `--yes` both work.
import { createInterface } from 'node:readline';

/** Writes `question` and reads one answer line from stdin (a terminal or a pipe); no input is "no". */
export async function confirm(question: string, write: (text: string) => void = (t) => void process.stderr.write(t)): Promise<boolean> {
  write(question);
  const rl = createInterface({ input: process.stdin, terminal: false });
  try {
    for await (const answer of rl) return /^y(es)?$/i.test(answer.trim());
    return false;
  } finally {
    rl.close();
  }
}
