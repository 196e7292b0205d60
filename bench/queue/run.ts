// Queue tools at the size of the incident: 400,000 queued messages, 300,000 of them from one
// spammer. Writes them in the real spool format (fsync off for the set-up only), then measures
// the operator's commands: list, count by sender, the server's start-up scan, and deleting every
// message of the spammer — time and peak RSS of each. Prints a markdown table; `--write` also
// saves it to bench/results/queue.md. Run: node --import tsx bench/queue/run.ts [--messages N] [--write]
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/observe/log.ts';
import { newQueueId } from '../../src/core/ids.ts';
import { encodeHeader, encodePrefix, encodeStateRecord, shortHash } from '../../src/queue/format.ts';
import type { Envelope } from '../../src/queue/envelope.ts';
import { inspectSpool } from '../../src/queue/inspect.ts';
import { compileFilter } from '../../src/queue/filter.ts';
import { Spool } from '../../src/queue/spool.ts';
import { Queue } from '../../src/queue/queue.ts';
import { QueueAdmin } from '../../src/queue/admin.ts';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};
const TOTAL = Number(arg('--messages') ?? 400_000);
const SPAM_SHARE = 0.75;
const SPAMMER = 'bulk@spam-source.example';
const ROOT = path.resolve(import.meta.dirname, '../..');
const BUCKETS = '0123456789abcdefghijklmnopqrstuv';

/** Peak RSS while `fn` runs, sampled every 20 ms. */
async function measure<T>(fn: () => Promise<T> | T): Promise<{ ms: number; cpuMs: number; peakMb: number; value: T }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    const c = process.cpuUsage(c0);
    return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, peakMb: peak / 1024 / 1024, value };
  } finally {
    clearInterval(timer);
  }
}

/** A spam-like message of ~1.6 KB with its Received header, as a session stores it. */
function body(i: number, from: string, to: string): Buffer {
  const filler = 'Limited offer! Best prices on everything you never wanted. '.repeat(20);
  return Buffer.from(
    `Received: from client${i % 250}.example.net ([198.51.100.${i % 250}])\r\n\tby mx.example.org (Mailward) with ESMTPSA id X\r\n\tfor <${to}>; Tue, 1 Jul 2025 10:00:00 +0000\r\n` +
      `From: <${from}>\r\nTo: <${to}>\r\nSubject: Offer ${i}\r\nMessage-ID: <${i}@spam-source.example>\r\n\r\n${filler}\r\n`,
  );
}

/** Writes `total` messages straight into queue/<bucket>/<id>, in the spool's real format. */
function populate(spoolDir: string, total: number): { bytes: number; spam: number } {
  for (const area of ['incoming', 'queue', 'hold', 'corrupt']) mkdirSync(path.join(spoolDir, area), { recursive: true });
  for (const area of ['queue', 'hold']) for (const b of BUCKETS) mkdirSync(path.join(spoolDir, area, b), { recursive: true });
  const now = Date.now();
  let bytes = 0;
  let spam = 0;
  for (let i = 0; i < total; i++) {
    const isSpam = i % 4 !== 3 && spam < total * SPAM_SHARE;
    if (isSpam) spam++;
    const from = isSpam ? SPAMMER : `user${i % 997}@sender${i % 89}.example`;
    const to = `rcpt${i % 5003}@dest${i % 211}.example`;
    // Arrivals spread over two days: the buckets fill evenly, as in a real queue.
    const receivedAt = now - Math.floor(((total - i) / total) * 2 * 86_400_000);
    const id = newQueueId(receivedAt);
    const env: Omit<Envelope, 'size'> = {
      id,
      receivedAt,
      mailFrom: from,
      recipients: [{ address: to, mailbox: to, transport: 'remote' }],
      client: { address: `198.51.100.${i % 250}`, helo: 'client.example.net', login: 'compromised@example.org', listener: 'submission', sessionId: `s${i}` },
      relayReason: 'login:compromised@example.org',
      smtputf8: false,
      body: '8BITMIME',
    };
    const header = encodeHeader(env);
    const msg = body(i, from, to);
    const parts = [encodePrefix({ headerLength: header.length, bodyLength: msg.length, headerHash: shortHash(header), bodyHash: shortHash(msg) }), header, Buffer.from('\n'), msg];
    // Most of a stuck queue has been tried before: one state record on two messages of three.
    if (i % 3 !== 0) parts.push(encodeStateRecord([{ index: 0, state: { status: 'deferred', attempts: 3, nextAttemptAt: now + 3_600_000, lastReply: '451 4.7.1 Try again later', updatedAt: now } }]));
    const file = Buffer.concat(parts);
    bytes += file.length;
    writeFileSync(path.join(spoolDir, 'queue', id[7]!, id), file);
  }
  return { bytes, spam };
}

function cli(config: string, args: string[]): { ms: number; out: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), ...args, '--config', config], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`mailward ${args.join(' ')} failed: ${r.stderr}`);
  return { ms: performance.now() - t0, out: r.stdout };
}

const fmtS = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const fmtMb = (mb: number): string => `${Math.round(mb)} MB`;

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-bench-queue-'));
  const dataDir = path.join(dir, 'data');
  const spoolDir = path.join(dataDir, 'spool');
  const config = path.join(dir, 'mailward.yaml');
  writeFileSync(config, `domains: [example.org]\ndataDir: ${dataDir}\nlog: { level: silent }\n`);
  const rows: string[][] = [];
  try {
    process.stderr.write(`writing ${TOTAL.toLocaleString('en')} messages (fsync off for the set-up)...\n`);
    const setup = await measure(() => populate(spoolDir, TOTAL));
    const spam = setup.value.spam;
    // Let the kernel write the set-up's dirty pages back now, or that writeback would be timed
    // as part of the operations below (unlinking a file under writeback waits for it).
    const flushed = await measure(() => spawnSync('sync'));
    rows.push(['set-up: write the messages, then `sync` (not queue operations)', `${fmtS(setup.ms)} + ${fmtS(flushed.ms)}`, '', '', `${(setup.value.bytes / 1024 / 1024).toFixed(0)} MB on disk`]);

    const list = await measure(() => {
      let n = 0;
      for (const e of inspectSpool(spoolDir)) if (e.ok) n++;
      return n;
    });
    rows.push(['list every message (stream, as `queue list`)', fmtS(list.ms), fmtS(list.cpuMs), fmtMb(list.peakMb), `${list.value.toLocaleString('en')} messages`]);

    const count = await measure(() => {
      const bySender = new Map<string, number>();
      for (const e of inspectSpool(spoolDir)) if (e.ok) bySender.set(e.message.envelope.mailFrom, (bySender.get(e.message.envelope.mailFrom) ?? 0) + 1);
      return bySender;
    });
    rows.push(['count by sender (as `queue list --summary`)', fmtS(count.ms), fmtS(count.cpuMs), fmtMb(count.peakMb), `${count.value.size.toLocaleString('en')} senders, top ${count.value.get(SPAMMER)?.toLocaleString('en')}`]);

    const filtered = await measure(() => {
      const match = compileFilter({ sender: SPAMMER });
      let n = 0;
      for (const e of inspectSpool(spoolDir)) if (e.ok && match(e.message.envelope, e.message.states, e.message.held)) n++;
      return n;
    });
    rows.push(['count one sender\'s messages (the delete confirmation)', fmtS(filtered.ms), fmtS(filtered.cpuMs), fmtMb(filtered.peakMb), `${filtered.value.toLocaleString('en')} match`]);

    const summary = cli(config, ['queue', 'list', '--summary']);
    rows.push(['`mailward queue list --summary` (a whole CLI process)', fmtS(summary.ms), '', '', summary.out.trim().split('\n').at(-1)!]);

    const log = silentLogger();
    const spool = await Spool.open(spoolDir, { log, fsync: false });
    const queue = new Queue(spool, { log });
    const start = await measure(() => queue.start());
    rows.push(['server start-up scan (schedule rebuilt from the spool)', fmtS(start.ms), fmtS(start.cpuMs), fmtMb(start.peakMb), `${start.value.scheduled.toLocaleString('en')} scheduled`]);

    const admin = new QueueAdmin(spool, queue, log);
    const del = await measure(() => admin.run('delete', { filter: { sender: SPAMMER } }));
    rows.push([`delete every message of one sender (the server's work for \`queue delete --sender\`)`, fmtS(del.ms), fmtS(del.cpuMs), fmtMb(del.peakMb), `${del.value.changed.toLocaleString('en')} of ${TOTAL.toLocaleString('en')} deleted`]);
    if (del.value.changed !== spam) throw new Error(`deleted ${del.value.changed}, expected ${spam}`);
    queue.stop();
    await spool.close();

    // The floor the file system sets: the same kind of files, written back, unlinked 64 at a
    // time with nothing else to do.
    const floorDir = path.join(dir, 'floor');
    mkdirSync(floorDir);
    const FLOOR = Math.min(20_000, spam);
    for (let i = 0; i < FLOOR; i++) writeFileSync(path.join(floorDir, String(i)), body(i, SPAMMER, 'x@example.net'));
    spawnSync('sync');
    const floor = await measure(async () => {
      let next = 0;
      await Promise.all(Array.from({ length: 64 }, async () => {
        while (next < FLOOR) await unlink(path.join(floorDir, String(next++)));
      }));
    });
    rows.push([`file-system floor: unlink ${FLOOR.toLocaleString('en')} written-back files, 64 at a time, nothing else`, fmtS(floor.ms), fmtS(floor.cpuMs), '', `${((floor.ms / FLOOR) * 1000).toFixed(0)} µs a file, ${fmtS((floor.ms / FLOOR) * spam)} for ${spam.toLocaleString('en')}`]);

    const left = cli(config, ['queue', 'list', '--summary']);
    rows.push(['`mailward queue list --summary` afterwards', fmtS(left.ms), '', '', left.out.trim().split('\n').at(-1)!]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const table = [
    `Queue tools with ${TOTAL.toLocaleString('en')} queued messages (${Math.round(SPAM_SHARE * 100)}% from one sender), ${cpus().length} CPUs, ${Math.round(totalmem() / 1024 ** 3)} GB RAM, Node ${process.version}, libuv thread pool ${process.env.UV_THREADPOOL_SIZE ?? 4}, load average ${loadavg()[0]!.toFixed(1)} at the end. The files are written back to disk (\`sync\`) before anything is timed, as in a queue that has sat for hours; the page cache is warm. Peak RSS is this process's (baseline included).`,
    '',
    '| operation | time | CPU time (all threads) | peak RSS | result |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
  process.stdout.write(table);
  if (process.argv.includes('--write')) {
    mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(path.join(ROOT, 'bench/results/queue.md'), `# Queue benchmark (bench/queue/run.ts)\n\n${table}`);
  }
}

await main();
