// Child process for spool-crash.test.ts: commits messages in a loop (several at once, some big
// enough to spill to disk) and prints "<id> <size> <sha256>" only after each commit resolved.
// The test kills it with SIGKILL at a random moment.
import { createHash } from 'node:crypto';
import { Spool } from '../../src/queue/spool.ts';
import { silentLogger } from '../../src/observe/log.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: spool-crash-child.ts <spool dir>');
const spool = await Spool.open(dir, { log: silentLogger(), memoryLimit: 64 * 1024 });
let n = 0;

async function loop(lane: number): Promise<never> {
  for (;;) {
    const i = n++;
    const size = i % 5 === 0 ? 300_000 + i : 2_000 + i;
    const body = Buffer.alloc(size, (i * 7 + lane) % 256);
    const w = spool.begin({
      mailFrom: `sender${i}@example.org`,
      recipients: [{ address: `rcpt${i}@example.net`, transport: 'local' }],
      client: { address: '127.0.0.1', listener: 'mx', sessionId: `s${i}` },
      smtputf8: false,
      body: 'BINARYMIME',
    });
    for (let off = 0; off < size; off += 16_384) await w.write(body.subarray(off, off + 16_384));
    await w.commit();
    process.stdout.write(`${w.id} ${size} ${createHash('sha256').update(body).digest('hex')}\n`);
  }
}

await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(loop));
