// Acceptor processes: with `workers: N > 1` the SMTP sessions, their checks and their spool writes
// run in N child processes, one per core, so one event loop is no longer the ceiling
// (docs/decisions/0012-acceptor-processes.md). This process keeps the listening sockets and
// counts the connection limits, then hands each admitted connection to the least busy acceptor;
// acceptors tell it of every commit (it schedules delivery), of mail events (statistics), of
// HELO/sender observations (tunnel detection) and send it their log lines.
import { fork, type ChildProcess } from 'node:child_process';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import { writeRawLines } from '../observe/log.ts';
import { mailEvents } from '../observe/events.ts';
import type { MailEvent, MailEventFields } from '../observe/maillog.ts';
import type { Envelope } from '../queue/envelope.ts';
import type { CommittedBytes } from '../queue/writer.ts';
import type { TunnelSuspect } from '../doctor/tunnel.ts';
import type { AdmittedConnection } from '../ingress/listener.ts';
import { refuse, TEMP_FAILURE } from '../ingress/listener.ts';
import { heldLockFds } from '../queue/lock.ts';
import type { ConnectionInfo } from '../ingress/smtp/types.ts';
import type { PemPair } from './certificates.ts';

/** Primary → acceptor. */
export type ToAcceptor =
  | { readonly t: 'init'; readonly config: Config; readonly logLevel: string; readonly slice: { readonly index: number; readonly count: number }; readonly tls: PemPair }
  | { readonly t: 'conn'; readonly listener: string; readonly info: ConnectionInfo; readonly rest?: string; readonly refusal?: AdmittedConnection['refusal'] }
  | { readonly t: 'reload'; readonly config: Config }
  /** The certificate changed (renewed, reloaded): new sessions of the acceptor use this pair. */
  | { readonly t: 'tls'; readonly pair: PemPair }
  | { readonly t: 'suspect'; readonly suspect: TunnelSuspect }
  /** The observations of this acceptor up to `seq` are counted (AcceptorBatch.countedUpTo). */
  | { readonly t: 'counted'; readonly seq: number }
  | { readonly t: 'stop' };

/** Acceptor → primary: one batch per event-loop turn, so a busy acceptor sends few messages. */
export interface AcceptorBatch {
  readonly t: 'batch';
  readonly logs?: string;
  readonly events?: ReadonlyArray<readonly [MailEvent, MailEventFields, number]>;
  readonly observed?: ReadonlyArray<readonly [string, string | undefined, string | undefined]>;
  /** A session waits until the primary has counted these observations: answer with 'counted'. */
  readonly countedUpTo?: number;
  /** With the header and body bytes (latin1) when the message was committed from memory, so
   * that delivery need not read back the file just written (docs/decisions/0009). */
  readonly commits?: ReadonlyArray<readonly [Envelope, 'queue' | 'quarantine', string?, string?]>;
  readonly closed?: readonly string[];
}
export type FromAcceptor = { readonly t: 'ready' } | { readonly t: 'failed'; readonly error: string } | AcceptorBatch;

export interface AcceptorPoolOptions {
  readonly config: Config;
  readonly count: number;
  readonly log: Logger;
  /** A commit an acceptor made: schedule it (Spool.adoptCommitted). */
  committed(envelope: Envelope, area: 'queue' | 'quarantine', written?: CommittedBytes): void;
  /**
   * An acceptor died unexpectedly at `since` or later: find what it committed but could not
   * announce (Spool.adoptStray), so that no acknowledged message waits for a restart.
   */
  strays(since: number): Promise<number>;
  /** The certificate in use now: an acceptor starts with it (and gets every later one by `certificate`). */
  certificate(): PemPair;
  /** Tunnel suspects now, for an acceptor that starts (or restarts) late. */
  suspects(): TunnelSuspect[];
  /** One MAIL FROM seen by an acceptor (TunnelDetector.observe). */
  observed(clientAddress: string, helo: string | undefined, senderDomain: string | undefined): void;
}

/** How long stop() waits for an acceptor: its listeners' bounded close (10 s) and a margin. */
const STOP_LIMIT_MS = 15_000;

interface Acceptor {
  readonly index: number;
  readonly child: ChildProcess;
  readonly startedAt: number;
  ready: boolean;
  /** The config it was started with (a reload before it was ready is sent again). */
  readonly config: Config;
  /** Sessions handed over and not reported closed: id → resolve. */
  readonly sessions: Map<string, () => void>;
}

/** The acceptor entry point beside this file (.ts when run from source, .js when built). */
const ENTRY = fileURLToPath(new URL(`./acceptor-main${extname(fileURLToPath(import.meta.url))}`, import.meta.url));

/**
 * Node flags to start an acceptor with: this process's loaders (tsx from source), never the test
 * runner's own flags (a child started with --test would run tests instead).
 */
function childExecArgv(): string[] {
  return process.execArgv.filter((a) => !a.startsWith('--test') && !a.startsWith('--experimental-test') && !a.startsWith('--watch'));
}

/**
 * Stops `socket` reading and returns the bytes this process already holds of it (`rest` from a
 * PROXY header, and anything in its buffer): only the kernel's unread bytes travel with a socket
 * handed to another process, and a handle still reading would drop what arrives meanwhile (an
 * implicit-TLS ClientHello, say). A socket accepted paused was never read: nothing to take.
 */
function takeBuffered(socket: Socket, rest: Buffer | undefined): Buffer {
  const chunks = rest && rest.length > 0 ? [rest] : [];
  // All in one synchronous stretch: no read callback can run between the drain and readStop.
  while (socket.readableLength > 0) {
    const chunk = socket.read(socket.readableLength) as Buffer | null;
    if (chunk === null) break;
    chunks.push(chunk);
  }
  const handle = (socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number } })._handle;
  if (handle?.reading) {
    handle.readStop?.();
    handle.reading = false;
  }
  return Buffer.concat(chunks);
}

export class AcceptorPool {
  readonly #o: AcceptorPoolOptions;
  readonly #acceptors: Array<Acceptor | undefined>;
  #config: Config;
  #stopping = false;
  #restarts = 0;

  private constructor(o: AcceptorPoolOptions) {
    this.#o = o;
    this.#config = o.config;
    this.#acceptors = Array.from({ length: o.count }, () => undefined);
  }

  /** Forks the acceptors and waits until every one is serving; throws what a failing one said. */
  static async start(o: AcceptorPoolOptions): Promise<AcceptorPool> {
    const { pool, ready } = AcceptorPool.launch(o);
    try {
      await ready;
    } catch (err) {
      await pool.stop();
      throw err;
    }
    return pool;
  }

  /**
   * Forks the acceptors and returns at once: `ready` resolves when every one serves (or rejects
   * with what a failing one said; the pool goes on restarting it). Until then `serving` is false
   * and the caller serves connections itself, so the listeners need not wait for the children's
   * module loading (docs/decisions/0018-startup.md).
   */
  static launch(o: AcceptorPoolOptions): { pool: AcceptorPool; ready: Promise<void> } {
    const pool = new AcceptorPool(o);
    const ready = Promise.all(pool.#acceptors.map((_, i) => pool.#spawn(i))).then(() => undefined);
    return { pool, ready };
  }

  /** Whether some acceptor serves sessions now. */
  get serving(): boolean {
    return !this.#stopping && this.#acceptors.some((a) => a?.ready && a.child.connected);
  }

  /** Process ids of the acceptors (for tests). */
  get pids(): number[] {
    return this.#acceptors.flatMap((a) => (a?.child.pid !== undefined ? [a.child.pid] : []));
  }

  /** Hands an admitted connection to the least busy acceptor; resolves when its session is over. */
  serve(listener: string, socket: Socket, admitted: AdmittedConnection): Promise<void> {
    let best: Acceptor | undefined;
    for (const a of this.#acceptors) if (a?.ready && a.child.connected && (!best || a.sessions.size < best.sessions.size)) best = a;
    if (!best || this.#stopping) {
      this.#o.log.error({ event: 'acceptor-unavailable', listener, session: admitted.info.id }, 'no acceptor process is running: connection refused with 421 (see the earlier acceptor-exit lines)');
      refuse(socket, TEMP_FAILURE);
      return Promise.resolve();
    }
    const a = best;
    const extra = takeBuffered(socket, admitted.rest);
    const rest = extra.length > 0 ? extra.toString('latin1') : undefined;
    const msg: ToAcceptor = { t: 'conn', listener, info: admitted.info, ...(rest ? { rest } : {}), ...(admitted.refusal ? { refusal: admitted.refusal } : {}) };
    return new Promise<void>((resolve) => {
      a.sessions.set(admitted.info.id, resolve);
      a.child.send(msg, socket, { keepOpen: false }, (err) => {
        // Sent: the handle is the acceptor's now (Node has taken it off this side's socket).
        if (!err) return;
        a.sessions.delete(admitted.info.id);
        this.#o.log.warn({ event: 'acceptor-handoff-failed', acceptor: a.index, session: admitted.info.id, err: err.message }, 'could not hand a connection to an acceptor process; refused with 421');
        refuse(socket, TEMP_FAILURE);
        resolve();
      });
    });
  }

  /** A reloaded config: every acceptor rebuilds its live state (check lists, relay, limits). */
  reload(config: Config): void {
    this.#config = config;
    this.#broadcast({ t: 'reload', config });
  }

  /** A new certificate (the primary validated it): every acceptor swaps it in for new sessions. */
  certificate(pair: PemPair): void {
    this.#broadcast({ t: 'tls', pair });
  }

  /** A tunnel suspect found here: acceptors judge relaying with it too. */
  suspect(suspect: TunnelSuspect): void {
    this.#broadcast({ t: 'suspect', suspect });
  }

  /** Lets every acceptor finish its sessions (bounded, like a listener's close) and exit. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const limit = STOP_LIMIT_MS;
    await Promise.all(
      this.#acceptors.map(async (a) => {
        if (!a || a.child.exitCode !== null || a.child.signalCode !== null) return;
        // 'close', not 'exit': its last messages (commits) are read by then.
        const exited = new Promise<void>((resolve) => a.child.once('close', () => resolve()));
        this.#send(a, { t: 'stop' });
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), limit)));
        if ((await Promise.race([exited, late])) === 'late') {
          this.#o.log.warn({ event: 'acceptor-kill', acceptor: a.index, pid: a.child.pid }, `acceptor ${a.index} did not stop within ${limit} ms; killed`);
          a.child.kill('SIGKILL');
          await exited;
        }
        clearTimeout(timer);
      }),
    );
  }

  #broadcast(msg: ToAcceptor): void {
    for (const a of this.#acceptors) if (a?.ready) this.#send(a, msg);
  }

  #send(a: Acceptor, msg: ToAcceptor): void {
    if (!a.child.connected) return;
    a.child.send(msg, (err) => {
      if (err) this.#o.log.warn({ event: 'acceptor-send-failed', acceptor: a.index, message: msg.t, err: err.message }, `could not tell acceptor ${a.index} (${msg.t})`);
    });
  }

  #spawn(index: number): Promise<void> {
    // It holds the spool lock with us (fd 4, never used): no new server can take the spool while
    // an acceptor that writes into it still runs (docs/decisions/0017-spool-lock.md).
    const child = fork(ENTRY, [], { execArgv: childExecArgv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...heldLockFds(this.#config.paths.spool)], serialization: 'json' });
    const a: Acceptor = { index, child, startedAt: Date.now(), ready: false, config: this.#config, sessions: new Map() };
    this.#acceptors[index] = a;
    return new Promise<void>((resolve, reject) => {
      // A send to a process that just went away reports here; its exit is handled below.
      child.on('error', (err) => this.#o.log.warn({ event: 'acceptor-error', acceptor: index, pid: child.pid, err: err.message }, `acceptor process ${index}: ${err.message}`));
      child.on('message', (m: FromAcceptor) => {
        if (m.t === 'batch') this.#take(a, m);
        else if (m.t === 'ready') {
          a.ready = true;
          // What it missed while starting: broadcasts go to ready acceptors only.
          if (a.config !== this.#config) this.#send(a, { t: 'reload', config: this.#config });
          // A renewal while it started: the acceptor ignores a pair it already holds.
          this.#send(a, { t: 'tls', pair: this.#o.certificate() });
          for (const suspect of this.#o.suspects()) this.#send(a, { t: 'suspect', suspect });
          this.#o.log.info({ event: 'acceptor-ready', acceptor: index, pid: child.pid }, `acceptor process ${index} (pid ${child.pid}) serves`);
          resolve();
        } else if (m.t === 'failed') reject(new Error(m.error));
      });
      // 'close' comes after the last message it sent was read.
      child.once('close', (code, signal) => {
        a.ready = false;
        // Their sessions are gone with the process: the listener may count them free again.
        for (const done of a.sessions.values()) done();
        a.sessions.clear();
        reject(new Error(`acceptor process ${index} exited during start-up (code ${code}, signal ${signal})`));
        if (this.#stopping) return;
        this.#o.log.error({ event: 'acceptor-exit', acceptor: index, pid: child.pid, code, signal }, `acceptor process ${index} exited (code ${code}, signal ${signal}); starting a new one`);
        this.#o.strays(a.startedAt).then(
          (n) => n > 0 && this.#o.log.warn({ event: 'acceptor-strays', acceptor: index, adopted: n }, `${n} message(s) acceptor ${index} had committed without telling: scheduled`),
          (err: unknown) => this.#o.log.error({ event: 'acceptor-strays', acceptor: index, err: String(err) }, 'could not look for messages the dead acceptor committed; they are picked up at the next start'),
        );
        // Doubling pause between restarts, so a process that dies at once cannot spin.
        const wait = Math.min(30_000, 250 * 2 ** Math.min(this.#restarts++, 7));
        setTimeout(() => {
          if (this.#stopping) return;
          this.#spawn(index).then(
            () => (this.#restarts = 0),
            (err: unknown) => this.#o.log.error({ event: 'acceptor-restart-failed', acceptor: index, err: String(err) }, `acceptor process ${index} could not be restarted`),
          );
        }, wait).unref();
      });
      this.#send(a, { t: 'init', config: this.#config, logLevel: this.#o.log.level, slice: { index: index + 1, count: this.#acceptors.length + 1 }, tls: this.#o.certificate() });
    });
  }

  #take(a: Acceptor, m: AcceptorBatch): void {
    if (m.logs) writeRawLines(this.#o.log, m.logs);
    for (const [envelope, area, header, body] of m.commits ?? []) {
      this.#o.committed(envelope, area, header !== undefined && body !== undefined ? { header: Buffer.from(header, 'latin1'), body: Buffer.from(body, 'latin1') } : undefined);
    }
    for (const [event, fields, at] of m.events ?? []) mailEvents.publish(event, fields, at);
    for (const [client, helo, domain] of m.observed ?? []) this.#o.observed(client, helo, domain);
    // After any suspect those observations made was broadcast: the acceptor hears it first.
    if (m.countedUpTo !== undefined) this.#send(a, { t: 'counted', seq: m.countedUpTo });
    for (const id of m.closed ?? []) {
      a.sessions.get(id)?.();
      a.sessions.delete(id);
    }
  }
}
