// Shared pieces of the spool, queue and delivery tests: a temp folder removed after the test, a
// logger that keeps its lines for assertions, a typical envelope, polling for a condition, and a
// queue + delivery worker over a spool.
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import type { Logger } from '../../src/observe/log.ts';
import type { NewEnvelope, Spool } from '../../src/queue/spool.ts';
import { Queue, type QueueOptions } from '../../src/queue/queue.ts';
import { Worker } from '../../src/delivery/worker.ts';
import type { Transport } from '../../src/delivery/transport.ts';
import { spawnOwned, stopGroup } from '../harness/processes.ts';

export async function tempDir(t: TestContext, prefix = 'mailward-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface CapturedLog {
  readonly log: Logger;
  readonly lines: Array<Record<string, unknown>>;
  events(name: string): Array<Record<string, unknown>>;
}

export function captureLog(): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines, events: (name) => lines.filter((l) => l.event === name) };
}

export function envelope(over: Partial<NewEnvelope> = {}): NewEnvelope {
  return {
    mailFrom: 'alice@example.org',
    recipients: [{ address: 'bob@example.net', mailbox: 'bob@example.net', transport: 'local' }],
    client: { address: '192.0.2.7', helo: 'client.example.org', listener: 'mx', sessionId: 'sess1' },
    smtputf8: false,
    body: '8BITMIME',
    ...over,
  };
}

/** Queues one message the way a session does: the Received header as the first chunk. */
export async function queueMessage(spool: Spool, env: NewEnvelope, body: Buffer | string): Promise<string> {
  const w = spool.begin(env);
  await w.write(Buffer.from(`Received: from client.example.org by mx.example.net with ESMTP id ${w.id}\r\n`));
  await w.write(Buffer.from(body));
  await w.commit();
  return w.id;
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/**
 * Polls `cond` every 10 ms until it holds; fails naming `what` after `ms`. The limit only ends a
 * test that is failing anyway: it is generous, since a loaded machine can be 10× slower.
 */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface DeliveryRig {
  readonly spool: Spool;
  readonly queue: Queue;
  readonly worker: Worker;
  /** Stops worker, queue and spool once (the shutdown, or the "crash" between process lives). */
  readonly stop: () => Promise<void>;
}

/** A queue and a delivery worker over `spool`, started, and stopped after the test. */
export async function startDelivery(t: TestContext, spool: Spool, cap: CapturedLog, transports: Record<string, Transport>, opts: Partial<QueueOptions> = {}): Promise<DeliveryRig> {
  const queue = new Queue(spool, { log: cap.log, minBackoffMs: 40, maxBackoffMs: 200, ...opts });
  const worker = new Worker({ spool, queue, transports, log: cap.log });
  await queue.start();
  worker.start();
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await worker.stop();
    queue.stop();
    await spool.close();
  };
  t.after(stop);
  return { spool, queue, worker, stop };
}

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Runs the test child `script` (through tsx) with `args` until it has printed `lines` complete
 * lines, then kills it with SIGKILL — the crash — and returns the complete lines it printed.
 */
export async function runUntilLines(script: string, args: readonly string[], lines: number): Promise<string[]> {
  const proc = spawnOwned(undefined, process.execPath, ['--import', 'tsx', script, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(proc, 'exit');
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.split('\n').length - 1 >= lines) {
        proc.kill('SIGKILL');
        resolve();
      }
    });
    proc.on('exit', () => reject(new Error(`child exited before it was killed: ${err}`)));
  });
  const [, signal] = (await exited) as [number | null, string | null];
  await stopGroup(proc, 'SIGKILL');
  assert.equal(signal, 'SIGKILL');
  // Only complete lines were acknowledged.
  return out.split('\n').slice(0, -1);
}
