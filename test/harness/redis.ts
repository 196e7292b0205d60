// Starts a real redis-server for a test (or the store benchmark): loopback only, a free port, its
// own temporary data folder, no persistence. Stopped in the test's after hook when given one.
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './ports.ts';
import { hasExited, spawnOwned, stopGroup } from './processes.ts';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly pid: number | undefined;
  /** SIGTERM, wait for exit, remove the data folder. */
  stop(): Promise<void>;
  /** SIGKILL (a crash), wait for exit; the data folder stays for restart(). */
  kill(): Promise<void>;
  /** Starts again on the same port (after kill() or stop()); the data is gone (no persistence). */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that accepts connections but never answers. */
  pause(): void;
  resume(): void;
}

interface AfterHook {
  after(fn: () => unknown): void;
}

function findRedisServer(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'redis-server');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  throw new Error('redis-server not found: install it with apt-get install redis-server');
}


async function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Spawns redis-server on `port`; resolves when it answers PING, rejects if it exits first. */
async function launch(bin: string, port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning'];
  const child = spawnOwned(undefined, bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (hasExited(child)) {
      throw new Error(`redis-server exited during startup on port ${port}: ${output.trim().slice(-500)}`);
    }
    if (await ping(port)) return child;
    await sleep(20);
  }
  await stopGroup(child, 'SIGKILL');
  throw new Error(`redis-server did not answer PING on port ${port} within 10 s: ${output.trim().slice(-500)}`);
}

export async function startRedis(t?: AfterHook): Promise<RedisServer> {
  const bin = findRedisServer();
  const dir = await mkdtemp(join(tmpdir(), 'mailward-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;
  // Another process may grab the port between freePort() and redis binding it: try again.
  for (let attempt = 1; child === undefined; attempt++) {
    port = await freePort();
    try {
      child = await launch(bin, port, dir);
    } catch (err) {
      if (attempt >= 5) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
  let stopped = false;

  const halt = async (signal: NodeJS.Signals) => {
    const c = child;
    if (c === undefined) return;
    await stopGroup(c, signal);
  };

  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
    async kill() {
      await halt('SIGKILL');
    },
    async restart() {
      await halt('SIGTERM');
      await mkdir(dir, { recursive: true });
      stopped = false;
      child = await launch(bin, port, dir);
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
  };
  t?.after(() => server.stop());
  return server;
}
