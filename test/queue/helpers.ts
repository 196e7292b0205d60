// Shared pieces of the spool, queue and delivery tests: a temp folder removed after the test, a
// logger that keeps its lines for assertions, and a typical envelope.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import type { Logger } from '../../src/observe/log.ts';
import type { NewEnvelope, Spool } from '../../src/queue/spool.ts';

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
