// What the policy service tests share: a real policy service (config, SQLite store, directory in a
// temp folder, the test DNS server, a clock the test moves, JSON log lines kept in memory) behind
// the real protocol server, and a raw client that speaks the protocol byte for byte.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { createPolicyService, type PolicyService } from '../../src/app/policyd.ts';
import { buildConfig, type Config } from '../../src/config/load.ts';
import { parsePolicyd, type ListenAddress, type PolicydInput } from '../../src/config/policyd-schema.ts';
import { policyServerSettings, startPolicyServer, type PolicyServer } from '../../src/shells/policyd.ts';
import type { TestDns } from '../harness/dns.ts';
import { makeClock, type Clock } from '../checks/env.ts';

export interface TestPolicyd {
  readonly config: Config;
  readonly service: PolicyService;
  readonly server: PolicyServer;
  readonly clock: Clock;
  readonly dir: string;
  readonly logs: Array<Record<string, unknown>>;
  /** The TCP port of the first TCP listener. */
  readonly port: number;
  /** Log lines of decisions and protocol problems (event accepted/rejected/deferred/discarded/protocol). */
  decisions(): Array<Record<string, unknown>>;
}

export interface PolicydOptions {
  readonly policyd?: PolicydInput;
  /** Top-level config keys (e.g. checks) merged over the test defaults. */
  readonly config?: Record<string, unknown>;
  readonly dns?: TestDns;
  /** Listen addresses; default one TCP port on 127.0.0.1 chosen by the system. */
  readonly listen?: ListenAddress[];
  /** The log level (default debug, every line kept). */
  readonly logLevel?: 'info' | 'debug';
}

export async function startPolicyd(t: TestContext, o: PolicydOptions = {}): Promise<TestPolicyd> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-policyd-'));
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = pino({ level: o.logLevel ?? 'debug' }, sink);
  const config = buildConfig(
    {
      hostname: 'mx.example.org',
      domains: ['example.org'],
      dataDir: dir,
      log: { level: 'debug', format: 'json' },
      dns: o.dns ? { servers: [o.dns.address], timeout: 300, tries: 1 } : { servers: ['127.0.0.1:9'], timeout: 200, tries: 1 },
      ...o.config,
    },
    'test config',
    dir,
  );
  const policyd = parsePolicyd(o.policyd ?? {}, 'test config');
  const clock = makeClock();
  const service = await createPolicyService(config, policyd, { log, clock });
  let server: PolicyServer;
  try {
    server = await startPolicyServer({
      listen: o.listen ?? [{ kind: 'tcp', host: '127.0.0.1', port: 0 }],
      engine: service.engine,
      log,
      ...policyServerSettings(policyd),
    });
  } catch (err) {
    await service.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  t.after(async () => {
    await server.close();
    await service.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const tcp = server.addresses.find((a) => a.kind === 'tcp');
  return {
    config,
    service,
    server,
    clock,
    dir,
    logs,
    port: tcp && tcp.kind === 'tcp' ? tcp.port : 0,
    decisions: () => logs.filter((l) => ['accepted', 'rejected', 'deferred', 'discarded', 'protocol'].includes(String(l.event))),
  };
}

/** A request as Postfix 3.7 sends it at RCPT (the attribute order and set of a real capture). */
export function rcptRequest(over: Record<string, string> = {}): Record<string, string> {
  return {
    request: 'smtpd_access_policy',
    protocol_state: 'RCPT',
    protocol_name: 'ESMTP',
    client_address: '192.0.2.10',
    client_name: 'mail.sender.example',
    client_port: '41630',
    reverse_client_name: 'mail.sender.example',
    server_address: '127.0.0.1',
    server_port: '25',
    helo_name: 'mail.sender.example',
    sender: 'alice@sender.example',
    recipient: 'bob@example.org',
    recipient_count: '0',
    queue_id: '',
    instance: '7ca7.6b0a1e67.3f5bc.0',
    size: '0',
    etrn_domain: '',
    stress: '',
    sasl_method: '',
    sasl_username: '',
    sasl_sender: '',
    ccert_subject: '',
    ccert_issuer: '',
    ccert_fingerprint: '',
    ccert_pubkey_fingerprint: '',
    encryption_protocol: '',
    encryption_cipher: '',
    encryption_keysize: '0',
    policy_context: '',
    ...over,
  };
}

export const encode = (attrs: Record<string, string>): string =>
  Object.entries(attrs)
    .map(([k, v]) => `${k}=${v}\n`)
    .join('') + '\n';

export interface PolicyClient {
  /** Sends one request and resolves with the value of its `action=` line. */
  ask(attrs: Record<string, string>): Promise<string>;
  /** Sends raw bytes. */
  send(data: string | Buffer): void;
  /** The next answer block's action (rejects if the server closes first). */
  answer(): Promise<string>;
  /** Resolves when the server has closed the connection; with everything it sent. */
  closed(): Promise<string>;
  close(): void;
  readonly socket: net.Socket;
}

export async function policyClient(where: number | string, timeoutMs = 5000): Promise<PolicyClient> {
  const socket: net.Socket = await new Promise((resolve, reject) => {
    const s = typeof where === 'number' ? net.connect({ host: '127.0.0.1', port: where }, () => resolve(s)) : net.connect({ path: where }, () => resolve(s));
    s.once('error', reject);
  });
  let buffer = '';
  let all = '';
  let ended = false;
  let wake: (() => void) | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffer += d;
    all += d;
    wake?.();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    ended = true;
    wake?.();
  });
  const waitFor = async <T>(get: () => T | undefined, what: string): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = get();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received so far: ${JSON.stringify(all)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  const answer = (): Promise<string> =>
    waitFor(() => {
      const end = buffer.indexOf('\n\n');
      if (end < 0) {
        if (ended) throw new Error(`the server closed the connection; received: ${JSON.stringify(all)}`);
        return undefined;
      }
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const m = /^action=(.*)$/m.exec(block);
      if (!m) throw new Error(`an answer without action=: ${JSON.stringify(block)}`);
      return m[1]!;
    }, 'an answer');
  return {
    socket,
    ask(attrs) {
      socket.write(encode(attrs));
      return answer();
    },
    send: (data) => socket.write(data),
    answer,
    closed: () => waitFor(() => (ended ? all : undefined), 'the server to close'),
    close: () => socket.destroy(),
  };
}
