// The listener opens before the lazily loaded check libraries are in (mailauth for SPF and DMARC,
// docs/decisions/0033): a message that arrives the moment the port answers must still get every
// check, never a default pass. A real server process (one process, and with two acceptor
// workers, whose interim sessions run in the primary), dialled as soon as its mx `listening` line
// appears; a forged sender must get SPF's 550 on that very first transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { spawnOwned, stopGroup } from '../harness/processes.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

for (const workers of [1, 2]) {
  test(`the first message after start (workers: ${workers}) is fully checked: a forged sender gets SPF's 550`, async (t) => {
    const dns = await startDns(t, { 'forged.example': { TXT: ['v=spf1 ip4:192.0.2.99 -all'] } });
    const dataDir = mkdtempSync(path.join(tmpdir(), 'mailward-first-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const configFile = path.join(dataDir, 'mailward.yaml');
    const raw = {
      hostname: 'mx.example.org',
      domains: ['example.org'],
      dataDir: path.join(dataDir, 'data'),
      workers,
      listeners: { mx: { kind: 'mx', host: '127.0.0.1', port: 0 } },
      dns: { servers: [dns.address], timeout: 2000, tries: 1 },
      pipeline: { mail: ['spf'] },
      log: { level: 'info', format: 'json' },
    };
    writeFileSync(configFile, JSON.stringify(raw)); // JSON is YAML
    const child = spawnOwned(t, process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts'), 'serve', '--config', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const logs: Array<Record<string, unknown>> = [];
    const waiters: Array<() => void> = [];
    const port = new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let l: Record<string, unknown>;
        try {
          l = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return; // not a log line
        }
        logs.push(l);
        waiters.forEach((w) => w());
        if (l.event === 'listening' && l.listener === 'mx') resolve(l.port as number);
      });
      child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening: ${stderr}`)));
    });
    const c = await dial(await port, { timeoutMs: 60_000 });
    await c.expect('220');
    await c.say('EHLO client.example').expect('250');
    const r = await c.say('MAIL FROM:<ceo@forged.example>').read();
    assert.match(r.raw, /^550 5\.7\.23/, `the first MAIL FROM of a forged sender must be refused by SPF, got: ${r.raw}`);
    c.close();
    // The decision is logged as the spf check's (the acceptors' lines come through the primary's log).
    await new Promise<void>((resolve) => {
      const done = (): boolean => logs.some((l) => l.event === 'rejected' && l.check === 'spf');
      if (done()) return resolve();
      waiters.push(() => done() && resolve());
    });
    await stopGroup(child, 'SIGTERM');
  });
}
