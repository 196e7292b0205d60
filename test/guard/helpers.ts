// What the guard tests share: a loopback HTTP server that records webhook POSTs, a transport that
// records what it is asked to deliver, and queued-message builders for the transport wrapper.
import http from 'node:http';
import { Readable } from 'node:stream';
import type { TestContext } from 'node:test';
import type { AddressInfo } from 'node:net';
import type { DeliverableMessage, RecipientOutcome, Transport } from '../../src/delivery/transport.ts';
import type { Envelope } from '../../src/queue/envelope.ts';

export interface Webhook {
  readonly url: string;
  readonly received: Array<Record<string, unknown>>;
  /** Answer with this status from now on (default 200). */
  status: number;
  waitFor(count: number, timeoutMs?: number): Promise<Array<Record<string, unknown>>>;
}

export async function startWebhook(t: TestContext): Promise<Webhook> {
  const received: Array<Record<string, unknown>> = [];
  let waiters: Array<() => void> = [];
  const hook: Webhook = {
    url: '',
    received,
    status: 200,
    async waitFor(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        if (Date.now() > deadline) throw new Error(`webhook got ${received.length} of ${count} alerts`);
        await new Promise<void>((r) => {
          const timer = setTimeout(r, 50);
          waiters.push(() => {
            clearTimeout(timer);
            r();
          });
        });
      }
      return received;
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ ...(JSON.parse(body) as Record<string, unknown>), _method: req.method, _type: req.headers['content-type'] });
      res.writeHead(hook.status).end();
      const w = waiters;
      waiters = [];
      w.forEach((f) => f());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (hook as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/mailward?token=secret-token`;
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return hook;
}

export interface RecordingTransport extends Transport {
  /** Each call: the queue id and the recipient addresses asked for. */
  readonly calls: Array<{ id: string; rcpts: string[] }>;
  /** Answer for every recipient (default ok). */
  outcome: RecipientOutcome['outcome'];
}

export function recordingTransport(): RecordingTransport {
  const t: RecordingTransport = {
    calls: [],
    outcome: 'ok',
    async deliver(msg, indexes) {
      t.calls.push({ id: msg.envelope.id, rcpts: indexes.map((i) => msg.envelope.recipients[i]!.address) });
      return indexes.map((index) => ({ index, outcome: t.outcome, reply: t.outcome === 'ok' ? '250 2.0.0 Ok' : t.outcome === 'temporary' ? '451 4.4.1 try later' : '550 5.1.1 no' }));
    },
  };
  return t;
}

let n = 0;

export function queued(o: { from: string; to: string[]; login?: string; client?: string }): DeliverableMessage {
  const envelope: Envelope = {
    id: `Q${++n}`,
    receivedAt: Date.now(),
    mailFrom: o.from,
    recipients: o.to.map((a) => ({ address: a, mailbox: a, transport: 'remote' as const })),
    client: { address: o.client ?? '192.0.2.10', listener: 'submission', sessionId: `s${n}`, ...(o.login ? { login: o.login } : {}) },
    smtputf8: false,
    body: '7BIT',
    size: 10,
  };
  return { envelope, body: () => Readable.from([Buffer.from('Subject: x\r\n\r\nx\r\n')]), recovered: false };
}
