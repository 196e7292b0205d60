// Child process for delete-journal.test.ts: opens a spool as the server does (spool, queue and
// its catalog), deletes every message of one sender through the journal, prints "deleted <n>"
// once the command returned, and waits to be killed with SIGKILL. With "paused" no file is
// removed before the kill; with "running" removal is under way when it comes.
import { Spool } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { QueueAdmin } from '../../src/queue/admin.ts';
import { silentLogger } from '../../src/observe/log.ts';

const [dir, mode, sender] = process.argv.slice(2);
if (!dir || (mode !== 'paused' && mode !== 'running') || !sender) throw new Error('usage: delete-journal-child.ts <spool dir> paused|running <sender>');
const log = silentLogger();
const spool = await Spool.open(dir, { log, removeConcurrency: mode === 'paused' ? 0 : 1 });
const queue = new Queue(spool, { log });
await queue.start();
const r = await new QueueAdmin(spool, queue, log).run('delete', { filter: { sender } });
process.stdout.write(`deleted ${r.changed}\n`);
setInterval(() => undefined, 60_000);
