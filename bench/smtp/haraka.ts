// A Haraka 3 instance for the benchmark: its default config (haraka -i) with only two plugins —
// rcpt_to.in_host_list accepting our domain, and a small queue plugin that writes each message
// to a file and fsyncs it before answering 250, the durability Mailward and Postfix give.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { DOMAIN } from './mailward.ts';
import { freePort, run, spawnTracked, stopChild, waitForSmtp } from './procs.ts';

export interface HarakaInstance {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  delivered(): number;
  stop(): Promise<void>;
}

const QUEUE_PLUGIN = `// Writes the message to a file and fsyncs it before the 250 (written by Mailward's benchmark).
const fs = require('node:fs');
const path = require('node:path');
const dir = process.env.HARAKA_BENCH_QUEUE;
exports.hook_queue = function (next, connection) {
  const txn = connection.transaction;
  txn.message_stream.get_data((buf) => {
    const file = path.join(dir, txn.uuid + '.eml');
    fs.open(file, 'wx', (err, fd) => {
      if (err) return next(DENYSOFT, 'queue write failed');
      fs.write(fd, buf, 0, buf.length, null, (err2) => {
        if (err2) return fs.close(fd, () => next(DENYSOFT, 'queue write failed'));
        fs.fsync(fd, (err3) => {
          fs.close(fd, () => (err3 ? next(DENYSOFT, 'queue fsync failed') : next(OK)));
        });
      });
    });
  });
};
`;

/** `nodes`: Haraka's smtp.ini nodes (cluster workers); undefined keeps its default of one. */
export async function startHaraka(harakaDir: string, root: string, nodes?: number | 'cpus'): Promise<HarakaInstance> {
  await run(process.execPath, [path.join(harakaDir, 'bin', 'haraka'), '-i', root]);
  const msgs = path.join(root, 'msgs');
  mkdirSync(msgs, { recursive: true });
  const port = await freePort();
  const config = path.join(root, 'config');
  writeFileSync(path.join(config, 'plugins'), 'rcpt_to.in_host_list\nqueue_fsync\n');
  writeFileSync(path.join(config, 'host_list'), `${DOMAIN}\n`);
  writeFileSync(path.join(config, 'me'), `mx.${DOMAIN}\n`);
  writeFileSync(path.join(config, 'smtp.ini'), `[main]\nlisten=127.0.0.1:${port}\n${nodes === undefined ? '' : `nodes=${nodes}\n`}`);
  writeFileSync(path.join(config, 'log.ini'), '[main]\nlevel=warn\n');
  writeFileSync(path.join(root, 'plugins', 'queue_fsync.js'), QUEUE_PLUGIN);
  // haraka.js reads its instance folder from $HARAKA (bin/haraka sets it the same way).
  const child = spawnTracked(process.execPath, [path.join(harakaDir, 'haraka.js')], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, HARAKA: root, HARAKA_BENCH_QUEUE: msgs },
  });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`haraka exited early with ${String(code)}`))));
  exited.catch(() => undefined);
  await Promise.race([waitForSmtp(port, 60_000, 'Haraka'), exited]);
  return {
    name: nodes === undefined ? 'haraka' : `haraka (nodes=${nodes})`,
    port,
    pid: child.pid!,
    child,
    delivered: () => readdirSync(msgs).length,
    stop: () => stopChild(child, 'SIGTERM', 15_000),
  };
}
