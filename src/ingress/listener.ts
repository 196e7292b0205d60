// One SMTP listener (MX, submission or implicit-TLS submissions): accepts TCP connections,
// applies PROXY headers from trusted proxies, enforces connection limits, wraps implicit TLS and
// hands each connection to the protocol engine with a handler from the session layer.
import net from 'node:net';
import type { Socket } from 'node:net';
import { compileNetworks, ipText, parseIp } from '../core/net.ts';
import { formatReply, reply, type SmtpReply } from '../core/reply.ts';
import { readProxyHeader, ProxyParseError, type ProxyHeader } from './proxy.ts';
import { SmtpConnection } from './smtp/connection.ts';
import { HANDSHAKE_TIMEOUT_MS, upgradeToTls } from './smtp/tls.ts';
import type { ConnectionInfo, ProtocolOptions, SessionHandler } from './smtp/types.ts';

export interface Listener {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  /** Stops accepting, ends idle sessions with 421 4.3.2 and waits (bounded) for the rest. */
  close(): Promise<void>;
  /** Connections currently held (including ones still reading a PROXY header). */
  connections(): number;
}

const TOO_MANY_CONNECTIONS = reply(421, '4.7.0', 'Too many connections, try again later');
const SHUTTING_DOWN = reply(421, '4.3.2', 'Service shutting down');
export const TEMP_FAILURE = reply(421, '4.3.0', 'Temporary failure, try again later');
const LINGER_MS = 5000;

let idCounter = 0;

/** Short, log-friendly, unique session id: base36 milliseconds + a base36 counter. */
export function newSessionId(): string {
  idCounter = (idCounter + 1) % 1_679_616; // 36^4
  return Date.now().toString(36) + idCounter.toString(36).padStart(4, '0');
}

/**
 * The client's address in one canonical form: IPv4-mapped IPv6 in any spelling (::ffff:1.2.3.4,
 * ::ffff:102:304, 0:0:0:0:0:ffff:1.2.3.4; RFC 4291 §2.5.5.2) as plain IPv4, IPv6 as RFC 5952 text.
 * Every check, limit and log line then sees one spelling per client.
 */
export function normalizeAddress(address: string): string {
  const ip = address.includes('%') ? undefined : parseIp(address);
  return ip ? ipText(ip) : address;
}

/** Builds the trusted-proxy list (core/net.ts, the one network parser); throws an operator-readable error for a bad entry. */
export function buildTrustList(entries: readonly string[]): TrustList | undefined {
  if (entries.length === 0) return undefined;
  return compileNetworks(entries, 'proxy.trusted');
}

type TrustList = ReturnType<typeof compileNetworks>;

function isTrusted(list: TrustList | undefined, address: string): boolean {
  if (!list || !address) return false;
  return list.match(address) !== undefined;
}

/** Sends a last reply and closes, reading (and dropping) input until the client goes. */
export function refuse(socket: Socket, r: SmtpReply): void {
  if (socket.destroyed) return;
  socket.end(formatReply(r));
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}

/** One connection as admitted (limits counted, PROXY header read): what serving it needs. */
export interface AdmittedConnection {
  readonly info: ConnectionInfo;
  /** Bytes read past a PROXY header; they belong to the SMTP stream. */
  readonly rest?: Buffer;
  /** Refuse with this after the TLS handshake (so an implicit-TLS client can read it). */
  readonly refusal?: SmtpReply;
}

export interface SessionHostOptions {
  readonly name: string;
  readonly protocol: ProtocolOptions;
  handlerFactory(conn: ConnectionInfo): SessionHandler;
  onEvent(event: string, detail: Record<string, unknown>): void;
  /** How long close() waits for messages in flight before dropping them (default 10000 ms). */
  readonly shutdownTimeoutMs?: number;
}

/**
 * Runs the SMTP sessions of admitted connections: implicit TLS, the handler, the protocol engine.
 * Apart from the listener so that an acceptor process can run sessions for connections its
 * primary admitted (app/acceptors.ts).
 */
export interface SessionHost {
  /** Resolves when the session is over (never rejects). */
  serve(socket: Socket, admitted: AdmittedConnection): Promise<void>;
  /** Ends idle sessions with 421 4.3.2 and waits (bounded) for the rest; refuses new ones. */
  close(): Promise<void>;
}

export function createSessionHost(opts: SessionHostOptions): SessionHost {
  const protocol = opts.protocol;
  const tlsContext = protocol.tls;
  if (protocol.implicitTls && !tlsContext) {
    throw new Error(`listener ${opts.name}: implicitTls is on but no TLS certificate is configured; configure a certificate and key or turn implicitTls off`);
  }
  const handshakeMs = Math.min(protocol.commandTimeoutMs, HANDSHAKE_TIMEOUT_MS);
  const sessions = new Set<SmtpConnection>();
  const sockets = new Set<Socket>();
  /** Sockets not yet in a session (TLS handshake): close() drops them at once. */
  const starting = new Set<Socket>();
  let closing = false;
  const event = eventSink(opts);

  const run = async (socket: Socket, { info, rest, refusal }: AdmittedConnection): Promise<void> => {
    if (rest && rest.length > 0) socket.unshift(rest);
    let sock: Socket = socket;
    if (protocol.implicitTls && tlsContext) {
      // RFC 8314: TLS from the first byte (after the PROXY header, which precedes TLS).
      try {
        sock = await upgradeToTls(socket, tlsContext, handshakeMs);
      } catch (err) {
        event('tls-error', { peer: info.remoteAddress, error: err instanceof Error ? err.message : String(err) });
        socket.destroy();
        return;
      }
    }
    if (refusal || closing) {
      refuse(sock, refusal ?? SHUTTING_DOWN);
      return;
    }
    let handler: SessionHandler;
    try {
      handler = opts.handlerFactory(info);
    } catch (err) {
      event('handler-error', { method: 'handlerFactory', session: info.id, error: err instanceof Error ? err.message : String(err) });
      refuse(sock, TEMP_FAILURE);
      return;
    }
    const session = new SmtpConnection(sock, info, protocol, handler);
    starting.delete(socket);
    sessions.add(session);
    await session.done;
    sessions.delete(session);
  };

  return {
    async serve(socket, admitted) {
      // A socket handed over from another process has no error listener yet: a reset must never
      // become an uncaught exception (it would take every session of the process down).
      if (socket.listenerCount('error') === 0) reportErrors(socket, admitted.info.remoteAddress, event);
      sockets.add(socket);
      starting.add(socket);
      socket.once('close', () => {
        sockets.delete(socket);
        starting.delete(socket);
      });
      try {
        await run(socket, admitted);
      } catch (err) {
        event('listener-error', { error: err instanceof Error ? err.message : String(err) });
        socket.destroy();
      }
    },
    async close() {
      if (closing) return;
      closing = true;
      for (const s of starting) s.destroy();
      for (const s of sessions) s.shutdown();
      const all = (): Promise<unknown> => Promise.all([...sessions].map((s) => s.done));
      await graceful(all(), opts.shutdownTimeoutMs ?? 10_000);
      for (const s of sessions) s.destroy('shutdown timeout');
      await all();
      // Give sockets that were ended a moment to deliver their last reply, then drop them.
      const left = [...sockets].map((s) => new Promise((resolve) => s.once('close', resolve)));
      await graceful(Promise.all(left), 1000);
      for (const s of sockets) s.destroy();
    },
  };
}

/**
 * Waits for `done`, at most `ms`. The timer is referenced (and cleared once either wins): the
 * caller awaits it, so it must hold the event loop: with an unref'd one, a `done` that waits on
 * something holding no handle (a socket whose 'close' never comes) lets the loop run dry, and a
 * process (or a test, once its other servers stopped) ends in the middle of close().
 */
async function graceful(done: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Socket errors become listener events: never an uncaught exception. */
function reportErrors(socket: Socket, peer: string | undefined, event: (name: string, detail: Record<string, unknown>) => void): void {
  socket.on('error', (err: NodeJS.ErrnoException) => event('socket-error', { peer, code: err.code, error: err.message }));
}

function eventSink(opts: { readonly name: string; onEvent(event: string, detail: Record<string, unknown>): void }) {
  return (name: string, detail: Record<string, unknown>): void => {
    try {
      opts.onEvent(name, { listener: opts.name, ...detail });
    } catch {
      // Logging must never take the listener down.
    }
  };
}

export interface ListenerOptions extends SessionHostOptions {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** Proxies allowed (and then required) to send a PROXY v1/v2 header: addresses or CIDR ranges. */
  readonly proxy?: { readonly trusted: readonly string[]; readonly timeoutMs?: number };
  readonly maxConnections: number;
  readonly maxConnectionsPerClient: number;
  /**
   * Where admitted connections go: by default a session host in this process; an acceptor pool
   * hands them to other processes (the socket is theirs then). Resolves when the session is over.
   */
  readonly serve?: (socket: Socket, admitted: AdmittedConnection) => Promise<void>;
  /**
   * A socket already bound to host:port (by root, before the process gave up its privileges;
   * app/privileges.ts): this listener takes over its handle instead of binding again.
   */
  readonly bound?: net.Server;
}

/**
 * Accepts TCP connections, reads PROXY headers from trusted proxies and counts the connection
 * limits (all of it here, so limits hold across acceptor processes), then hands each connection
 * to its session host.
 */
export async function startListener(opts: ListenerOptions): Promise<Listener> {
  const host = opts.serve ? undefined : createSessionHost(opts);
  const serve = opts.serve ?? ((socket: Socket, admitted: AdmittedConnection) => host!.serve(socket, admitted));
  const trusted = buildTrustList(opts.proxy?.trusted ?? []);
  const proxyTimeoutMs = opts.proxy?.timeoutMs ?? 5000;
  const pending = new Set<Socket>();
  const perClient = new Map<string, number>();
  let total = 0;
  let closing = false;
  const event = eventSink(opts);

  const release = (address: string): void => {
    const n = (perClient.get(address) ?? 1) - 1;
    if (n <= 0) perClient.delete(address);
    else perClient.set(address, n);
  };

  const accept = async (socket: Socket): Promise<void> => {
    // Before anything else: a socket error must never become an uncaught exception.
    reportErrors(socket, socket.remoteAddress, event);
    const peer = normalizeAddress(socket.remoteAddress ?? '');
    if (closing) {
      refuse(socket, SHUTTING_DOWN);
      return;
    }
    if (total >= opts.maxConnections) {
      event('connection-refused', { peer, reason: 'maxConnections', limit: opts.maxConnections });
      refuse(socket, TOO_MANY_CONNECTIONS);
      return;
    }
    total++;
    pending.add(socket);
    let client = { address: peer, port: socket.remotePort ?? 0 };
    let local = { address: normalizeAddress(socket.localAddress ?? ''), port: socket.localPort ?? 0 };
    let header: ProxyHeader | undefined;
    let rest: Buffer | undefined;
    let counted: string | undefined;
    try {
      if (isTrusted(trusted, peer)) {
        // A trusted proxy must always send a header: without one we would log and judge the
        // proxy's address as the client's (proxy-protocol.txt §1).
        try {
          const got = await readProxyHeader(socket, { timeoutMs: proxyTimeoutMs });
          header = got.header;
          rest = got.rest;
        } catch (err) {
          const reason = err instanceof ProxyParseError ? err.reason : String(err);
          event('proxy-error', { peer, reason });
          socket.destroy();
          return;
        }
        if (header.source && header.destination) {
          client = { address: normalizeAddress(header.source.address), port: header.source.port };
          local = { address: normalizeAddress(header.destination.address), port: header.destination.port };
        }
      }
      let refusal: SmtpReply | undefined;
      if ((perClient.get(client.address) ?? 0) >= opts.maxConnectionsPerClient) {
        event('connection-refused', { peer: client.address, reason: 'maxConnectionsPerClient', limit: opts.maxConnectionsPerClient });
        refusal = TOO_MANY_CONNECTIONS;
      } else {
        perClient.set(client.address, (perClient.get(client.address) ?? 0) + 1);
        counted = client.address;
      }
      if (closing) refusal = SHUTTING_DOWN;
      const info: ConnectionInfo = {
        id: newSessionId(),
        listener: opts.name,
        remoteAddress: client.address,
        remotePort: client.port,
        localAddress: local.address,
        localPort: local.port,
        ...(header ? { proxyPeer: peer, proxyVersion: header.version } : {}),
      };
      pending.delete(socket);
      await serve(socket, { info, ...(rest && rest.length > 0 ? { rest } : {}), ...(refusal ? { refusal } : {}) });
    } finally {
      pending.delete(socket);
      // A socket handed to another process never emits 'close' here (its handle left with it).
      if (opts.serve) sockets.delete(socket);
      total--;
      if (counted !== undefined) release(counted);
    }
  };

  const sockets = new Set<Socket>();
  // Paused until served: a socket handed to another process must not have been read from here.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: opts.serve !== undefined }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    accept(socket).catch((err: unknown) => {
      event('listener-error', { error: err instanceof Error ? err.message : String(err) });
      socket.destroy();
    });
  });
  server.on('error', (err) => event('listener-error', { error: err.message }));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(new Error(`listener ${opts.name}: cannot listen on ${opts.host}:${opts.port}: ${err.message}; check that the address exists and the port is free`));
    server.once('error', onError);
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    if (opts.bound) server.listen(opts.bound, onListening);
    else server.listen({ host: opts.host, port: opts.port }, onListening);
  });
  const bound = server.address() as net.AddressInfo;

  return {
    name: opts.name,
    port: bound.port,
    address: bound.address,
    connections: () => total,
    async close(): Promise<void> {
      if (closing) return;
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of pending) s.destroy();
      await host?.close();
      // Give sockets that were ended a moment to deliver their last reply, then drop them.
      await graceful(stopped, 1000);
      for (const s of sockets) s.destroy();
      await stopped;
    },
  };
}
