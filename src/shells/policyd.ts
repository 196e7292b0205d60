// The Postfix policy delegation server (SMTPD_POLICY_README): TCP and unix-socket listeners,
// connections kept open for many requests, answered in order, one `action=` per request.
// Malformed input is answered with a DEFER (or the connection closed), never a crash or a DUNNO.
import { once } from 'node:events';
import { etcEntry } from '../core/etc-files.ts';
import { chmod, chown, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { compileNetworks } from '../core/net.ts';
import type { ListenAddress, PolicydConfig } from '../config/policyd-schema.ts';
import type { Logger } from '../observe/log.ts';
import { mailEvent } from '../observe/maillog.ts';
import { TEMPFAIL_ACTION, type PolicyEngine } from '../policyd/engine.ts';
import { RequestParser, type ParsedItem } from '../policyd/parser.ts';

export interface PolicyServerOptions {
  readonly listen: readonly ListenAddress[];
  readonly engine: PolicyEngine;
  readonly log: Logger;
  readonly maxLineLength: number;
  readonly maxAttributes: number;
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  /** Client addresses or CIDR ranges allowed over TCP. */
  readonly clients: readonly string[];
  /** Mode of unix sockets, e.g. 0o660. */
  readonly socketMode: number;
  /** Group of unix sockets: a name from /etc/group or a number. */
  readonly socketGroup?: string | number;
}

/** The server settings that come from the `policyd:` config section. */
export function policyServerSettings(p: PolicydConfig): Omit<PolicyServerOptions, 'listen' | 'engine' | 'log'> {
  return {
    maxLineLength: p.limits.maxLineLength,
    maxAttributes: p.limits.maxAttributes,
    maxConnections: p.limits.maxConnections,
    idleTimeoutMs: p.limits.idleTimeout,
    clients: p.clients,
    socketMode: parseInt(p.socketMode, 8),
    ...(p.socketGroup !== undefined ? { socketGroup: p.socketGroup } : {}),
  };
}

export type BoundAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

export interface PolicyServer {
  readonly addresses: readonly BoundAddress[];
  /** Stops listening, answers the requests in progress, then closes every connection. */
  close(): Promise<void>;
}

/** Answer for a request whose framing broke; the connection is closed after it. */
export const FATAL_ACTION = 'DEFER 4.3.5 Policy service protocol error, please try again later';
// Requests parsed but not yet answered before we stop reading (Postfix sends one at a time).
const MAX_PENDING = 8;
// Answers waiting for a client that does not read before we stop reading its requests.
const MAX_UNSENT = 64 * 1024;
// Answers gathered into one write at most (a DEFER with its text is about 100 bytes).
const MAX_BATCH = 16 * 1024;
const CLOSE_GRACE_MS = 5000;

const describe = (a: ListenAddress | BoundAddress): string => (a.kind === 'unix' ? `unix:${a.path}` : `tcp:${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`);

export async function startPolicyServer(o: PolicyServerOptions): Promise<PolicyServer> {
  const allowed = clientList(o.clients);
  const gid = o.socketGroup === undefined ? undefined : resolveGroup(o.socketGroup);
  const servers: net.Server[] = [];
  const bound: BoundAddress[] = [];
  const connections = new Set<Connection>();
  let closing = false;

  const onConnection = (socket: net.Socket, where: string, unix: boolean): void => {
    const peer = unix ? where : `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    if (!unix && !isAllowed(allowed, socket.remoteAddress)) {
      o.log.warn({ event: 'policyd-refused', peer, listen: where }, 'policy client not in policyd.clients; connection closed');
      socket.destroy();
      return;
    }
    if (closing) {
      socket.destroy();
      return;
    }
    const c = new Connection(socket, peer, o, () => connections.delete(c));
    connections.add(c);
  };

  const closeAll = async (): Promise<void> => {
    closing = true;
    // server.close() calls back only once every connection is gone, so it is not awaited first.
    const stopped = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    const open = [...connections];
    for (const c of open) c.shutdown();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(open.map((c) => c.closed)), new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)))]);
    clearTimeout(timer);
    for (const c of open) c.destroy();
    await stopped;
    for (const b of bound) if (b.kind === 'unix') await unlink(b.path).catch(() => undefined);
  };

  try {
    for (const a of o.listen) {
      let where = describe(a);
      const server = net.createServer((socket) => onConnection(socket, where, a.kind === 'unix'));
      server.maxConnections = o.maxConnections;
      if (a.kind === 'unix') await clearStaleSocket(a.path);
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`policyd.listen ${where}: cannot listen (${err.code ?? err.message}); ${fixFor(err.code, a)}`)));
        if (a.kind === 'unix') server.listen({ path: a.path }, resolve);
        else server.listen({ host: a.host, port: a.port, exclusive: true }, resolve);
      });
      servers.push(server);
      server.on('error', (err) => o.log.error({ event: 'policyd-error', listen: where, err: err.message }, 'policy listener error'));
      if (a.kind === 'unix') {
        bound.push({ kind: 'unix', path: a.path });
        await chmod(a.path, o.socketMode);
        if (gid !== undefined) await chown(a.path, -1, gid);
      } else {
        const addr = server.address() as net.AddressInfo;
        bound.push({ kind: 'tcp', host: addr.address, port: addr.port });
        where = describe(bound[bound.length - 1]!); // the real port when 0 was asked for
      }
      o.log.info({ event: 'listening', listener: 'policyd', address: describe(bound[bound.length - 1]!) }, `policy service listening on ${describe(bound[bound.length - 1]!)}`);
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  return { addresses: bound, close: closeAll };
}

class Connection {
  readonly closed: Promise<void>;
  private readonly parser: RequestParser;
  private readonly queue: ParsedItem[] = [];
  private readonly abort = new AbortController();
  private busy = false;
  private ended = false;
  private stopping = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly peer: string,
    private readonly o: PolicyServerOptions,
    onClose: () => void,
  ) {
    this.parser = new RequestParser({ maxLineLength: o.maxLineLength, maxAttributes: o.maxAttributes });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.setNoDelay(true);
    socket.setTimeout(o.idleTimeoutMs);
    socket.on('timeout', () => {
      o.log.info({ event: 'policyd-idle', peer }, 'idle policy connection closed');
      socket.destroy();
    });
    socket.on('error', (err) => o.log.debug({ event: 'policyd-socket', peer, err: err.message }, 'policy connection error'));
    socket.on('close', () => {
      this.abort.abort();
      onClose();
    });
    socket.on('data', (chunk: Buffer) => {
      // After a fatal error the parser drops everything: reading on lets the peer flush and
      // close quickly, and the timer set after the answer bounds how long that may take.
      this.parser.push(chunk, this.queue);
      if (this.queue.length >= MAX_PENDING) socket.pause();
      void this.pump();
    });
    socket.on('end', () => {
      const cut = this.parser.end();
      if (cut) mailEvent(o.log, 'protocol', { listener: 'policyd', peer, reason: cut });
      this.ended = true;
      if (!this.busy && this.queue.length === 0) socket.end();
    });
  }

  /** Finish the request in progress, then close. */
  shutdown(): void {
    this.stopping = true;
    this.socket.pause();
    if (!this.busy) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    // Answers not yet written: the requests one read brought (a client that pipelines) are
    // answered with one write, one syscall, instead of one each.
    let unsent = '';
    try {
      while (this.queue.length > 0 && !this.socket.destroyed && !this.stopping) {
        const item = this.queue.shift()!;
        const action = await this.answer(item);
        if (this.socket.destroyed) return;
        unsent += `action=${action}\n\n`;
        if (item.kind === 'fatal') {
          this.socket.end(unsent);
          unsent = '';
          this.socket.resume();
          // A peer that keeps sending after the error is not waited for.
          setTimeout(() => this.socket.destroy(), 2000).unref();
          return;
        }
        if (this.queue.length > 0 && unsent.length < MAX_BATCH) continue;
        this.socket.write(unsent);
        unsent = '';
        if (this.socket.writableLength > MAX_UNSENT) await Promise.race([once(this.socket, 'drain'), this.closed]);
        if (this.queue.length < MAX_PENDING && this.socket.isPaused() && !this.stopping) this.socket.resume();
      }
    } catch (err) {
      // Never reached in practice (answer() catches); a broken connection is closed, not the process.
      this.o.log.error({ event: 'policyd-error', peer: this.peer, err: String(err) }, 'policy connection failed');
      this.socket.destroy();
    } finally {
      this.busy = false;
      // Answers decided before a shutdown stopped the loop still go out, in order.
      if (unsent !== '' && !this.socket.destroyed) this.socket.write(unsent);
      if ((this.ended || this.stopping) && !this.socket.destroyed) this.socket.end();
    }
  }

  private async answer(item: ParsedItem): Promise<string> {
    if (item.kind === 'fatal') {
      mailEvent(this.o.log, 'protocol', { listener: 'policyd', peer: this.peer, reason: item.problem, action: FATAL_ACTION });
      return FATAL_ACTION;
    }
    if (item.kind === 'invalid') {
      mailEvent(this.o.log, 'protocol', { listener: 'policyd', peer: this.peer, reason: item.problem, action: TEMPFAIL_ACTION });
      return TEMPFAIL_ACTION;
    }
    try {
      return (await this.o.engine.decide(item.attributes, this.abort.signal, this.peer)).action;
    } catch (err) {
      this.o.log.error({ event: 'policyd-error', peer: this.peer, err: err instanceof Error ? err.message : String(err) }, 'policy decision failed; deferring');
      return TEMPFAIL_ACTION;
    }
  }
}

// The one network parser (core/net.ts): an IPv4 client on a dual-stack socket (::ffff:a.b.c.d)
// is matched as IPv4, and a mapped range in the list is its IPv4 range.
const clientList = (list: readonly string[]): ReturnType<typeof compileNetworks> => compileNetworks(list, 'policyd.clients');

function isAllowed(b: ReturnType<typeof compileNetworks>, address: string | undefined): boolean {
  return address !== undefined && b.match(address) !== undefined;
}

/** A number, or a group name looked up in /etc/group. */
function resolveGroup(g: string | number): number {
  if (typeof g === 'number') return g;
  if (/^\d+$/.test(g)) return Number(g);
  const entry = etcEntry('/etc/group', 0, g, (f) => /^\d+$/.test(f[2] ?? ''));
  if (entry) return Number(entry[2]);
  throw new Error(`policyd.socketGroup: there is no group ${JSON.stringify(g)} in /etc/group; name an existing group (e.g. postfix) or give its number`);
}

/** Removes a socket file left by a process that is gone; refuses anything else. */
async function clearStaleSocket(p: string): Promise<void> {
  let st;
  try {
    st = await lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new Error(`policyd.listen unix:${p}: cannot inspect the path (${(err as NodeJS.ErrnoException).code ?? String(err)}); choose a path in a folder we can write`);
  }
  if (!st.isSocket()) throw new Error(`policyd.listen unix:${p}: the path exists and is not a socket; remove it by hand or choose another path`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect({ path: p });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`policyd.listen unix:${p}: another process is answering on this socket; stop it or choose another path`);
  await unlink(p);
}

function fixFor(code: string | undefined, a: ListenAddress): string {
  if (code === 'EADDRINUSE') return a.kind === 'tcp' ? `port ${a.port} is taken; stop the other service (postgrey?) or choose another port` : 'choose another path';
  if (code === 'EACCES') return a.kind === 'tcp' ? 'ports below 1024 need root; use a port such as 10040' : 'make the folder writable for this user';
  if (code === 'EADDRNOTAVAIL') return 'this machine has no such address; use 127.0.0.1';
  if (code === 'ENOENT') return 'create the folder first';
  return 'check the address';
}
