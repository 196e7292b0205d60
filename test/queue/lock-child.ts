// Child process for lock.test.ts: takes the spool lock on argv[2], optionally starts a process
// that inherits it (as acceptors do: argv[3] = 'inherit'), prints "locked <pid> [<inheritor>]"
// and stays until killed.
import { spawn } from 'node:child_process';
import { heldLockFds, lockSpool } from '../../src/queue/lock.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: lock-child.ts <spool dir> [inherit]');
await lockSpool(dir);
let extra = '';
if (process.argv[3] === 'inherit') {
  const kid = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: ['ignore', 'ignore', 'inherit', ...heldLockFds(dir)] });
  extra = ` ${kid.pid}`;
}
process.stdout.write(`locked ${process.pid}${extra}\n`);
setInterval(() => undefined, 1e6);
