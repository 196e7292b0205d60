// Child process for holds.test.ts: opens the spool (fsync on) with its queue, holds one sender's
// messages by filter through the queue tools, prints "held <n>" once the command returned, then
// waits to be killed with SIGKILL.
import { Spool } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { QueueAdmin } from '../../src/queue/admin.ts';
import { silentLogger } from '../../src/observe/log.ts';

const [dir, sender] = process.argv.slice(2);
if (!dir || !sender) throw new Error('usage: holds-child.ts <spool dir> <sender>');
const log = silentLogger();
const spool = await Spool.open(dir, { log });
const queue = new Queue(spool, { log });
await queue.start();
const r = await new QueueAdmin(spool, queue, log).run('hold', { filter: { sender }, operator: 'test' });
process.stdout.write(`held ${r.changed}\n`);
setInterval(() => undefined, 60_000);
