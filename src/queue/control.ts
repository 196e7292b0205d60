// The channel from `mailward queue hold|release|delete|flush|requeue` and `mailward quarantine
// release|delete` to a running server: a unix socket in the spool folder (mode 0600 inside a 0700
// folder: only the server's user may use it). One JSON request line in; progress lines and one
// result line out. The server runs the command itself, with its live schedule, so no delivery
// under way loses its state records.
import { chmod, unlink } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../observe/log.ts';
import type { LoadProgress } from './queue.ts';
import { ADMIN_OPS, type AdminOp, type AdminResult, type QueueAdmin, type QueueSummary, type Selection } from './admin.ts';
import { MESSAGE_STATES, type MessageState, type QueueFilter } from './filter.ts';
import { QUARANTINE_OPS, type QuarantineAdmin, type QuarantineOp, type QuarantineSelection } from './quarantine.ts';

export interface QueueControlRequest extends Selection {
  readonly op: AdminOp;
  /** Only count what `op` would work on (the delete confirmation); change nothing. */
  readonly countOnly?: boolean;
}

/** A quarantine command: "quarantine-release" or "quarantine-delete" (added later; queue requests are unchanged). */
export interface QuarantineControlRequest extends QuarantineSelection {
  readonly op: `quarantine-${QuarantineOp}`;
}

/** `queue list --summary` answered from the server's catalog. */
export interface SummaryControlRequest {
  readonly op: 'summary';
  readonly filter?: QueueFilter;
  readonly top?: number;
}

/** How far the server's start-up scan of the spool is (`mailward queue status`). */
export interface StatusControlRequest {
  readonly op: 'status';
}

/** `mailward outbound stop|start|status`: the "stop all outbound" switch of the running server. */
export interface OutboundControlRequest {
  readonly op: 'outbound';
  readonly action: 'stop' | 'start' | 'status';
  readonly operator?: string;
  readonly reason?: string;
}

/** The switch as the socket sees it (delivery/outbound-switch.ts; the queue does not import delivery). */
export interface OutboundSwitchState {
  readonly stopped: boolean;
  readonly since?: number;
  readonly by?: string;
  readonly reason?: string;
}

export interface OutboundSwitchHandle {
  status(): OutboundSwitchState;
  stop(by: string, reason?: string): Promise<OutboundSwitchState>;
  start(by: string): Promise<OutboundSwitchState>;
}

export type ControlRequest = QueueControlRequest | QuarantineControlRequest;
/** Everything the socket takes. */
export type AnyControlRequest = ControlRequest | StatusControlRequest | SummaryControlRequest | OutboundControlRequest;

export const isQuarantineRequest = (r: ControlRequest): r is QuarantineControlRequest => r.op.startsWith('quarantine-');

/** The quarantine operation a request names. */
export const quarantineOpOf = (r: QuarantineControlRequest): QuarantineOp => r.op.slice('quarantine-'.length) as QuarantineOp;

/** What travels back, one JSON object per line. */
export type ControlReply =
  | { readonly progress: AdminResult }
  | { readonly done: AdminResult }
  | { readonly error: string }
  /** The catalog is still loading: the command waits for it (sent once a second meanwhile). */
  | { readonly loading: LoadProgress }
  | { readonly status: LoadProgress }
  | { readonly summary: QueueSummary }
  | { readonly outbound: OutboundSwitchState };

/** The running queue's start-up scan, as the control socket reports it. */
export interface CatalogState {
  progress(): LoadProgress;
  whenLoaded(): Promise<void>;
}

const LOADING_NOTE_MS = 1_000;

/** The socket of the spool in `spoolDir`. */
export const controlSocketPath = (spoolDir: string): string => join(spoolDir, 'control.sock');

const MAX_REQUEST = 4 * 1024 * 1024;
// sockaddr_un holds 108 bytes on Linux (104 on BSD), including the terminating NUL.
const MAX_SOCKET_PATH = 103;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Copies `ids` and `all` of a request into `out` once checked; a string is what is wrong. */
function parseIdsAndAll(v: Record<string, unknown>, out: { ids?: string[]; all?: boolean }): string | undefined {
  if (v.ids !== undefined) {
    if (!Array.isArray(v.ids) || !v.ids.every((x) => typeof x === 'string')) return 'ids must be a list of strings';
    out.ids = v.ids;
  }
  if (v.all !== undefined) {
    if (typeof v.all !== 'boolean') return 'all must be true or false';
    out.all = v.all;
  }
  return undefined;
}

/** Checks a request read from the socket; a string is what is wrong with it. */
export function parseControlRequest(v: unknown): AnyControlRequest | string {
  if (!isObj(v)) return 'request is not an object';
  if (v.op === 'status') return { op: 'status' };
  if (v.op === 'outbound') {
    if (v.action !== 'stop' && v.action !== 'start' && v.action !== 'status') return 'action must be stop, start or status';
    for (const k of ['operator', 'reason'] as const) if (v[k] !== undefined && (typeof v[k] !== 'string' || v[k].length > 200)) return `${k} must be a string of at most 200 characters`;
    return { op: 'outbound', action: v.action, ...(typeof v.operator === 'string' ? { operator: v.operator } : {}), ...(typeof v.reason === 'string' ? { reason: v.reason } : {}) };
  }
  if (v.op === 'summary') {
    const top = v.top === undefined ? 10 : v.top;
    if (typeof top !== 'number' || !Number.isInteger(top) || top < 1) return 'top must be a whole number of at least 1';
    const filter = v.filter === undefined ? {} : parseFilter(v.filter);
    return typeof filter === 'string' ? filter : { op: 'summary', filter, top };
  }
  if (typeof v.op === 'string' && v.op.startsWith('quarantine-')) return parseQuarantineRequest(v);
  if (typeof v.op !== 'string' || !(ADMIN_OPS as readonly string[]).includes(v.op)) return `unknown op ${JSON.stringify(v.op)}`;
  const out: { op: AdminOp; ids?: string[]; filter?: QueueFilter; all?: boolean; countOnly?: boolean; operator?: string } = { op: v.op as AdminOp };
  if (v.operator !== undefined) {
    if (typeof v.operator !== 'string' || v.operator.length > 200) return 'operator must be a string of at most 200 characters';
    out.operator = v.operator;
  }
  if (v.countOnly !== undefined) {
    if (typeof v.countOnly !== 'boolean') return 'countOnly must be true or false';
    out.countOnly = v.countOnly;
  }
  const sel = parseIdsAndAll(v, out);
  if (sel) return sel;
  if (v.filter !== undefined) {
    const filter = parseFilter(v.filter);
    if (typeof filter === 'string') return filter;
    out.filter = filter;
  }
  if ((out.ids === undefined || out.ids.length === 0) && !out.all && !out.filter) return 'no messages selected: give ids, a filter, or all';
  return out;
}

function parseFilter(f: unknown): QueueFilter | string {
  if (!isObj(f)) return 'filter must be an object';
  const filter: { -readonly [K in keyof QueueFilter]: QueueFilter[K] } = {};
  for (const k of ['sender', 'recipient', 'domain', 'login'] as const) {
    if (f[k] === undefined) continue;
    if (typeof f[k] !== 'string') return `filter.${k} must be a string`;
    filter[k] = f[k];
  }
  if (f.olderThanMs !== undefined) {
    if (typeof f.olderThanMs !== 'number' || !(f.olderThanMs >= 0)) return 'filter.olderThanMs must be a number of milliseconds';
    filter.olderThanMs = f.olderThanMs;
  }
  if (f.state !== undefined) {
    if (typeof f.state !== 'string' || !(MESSAGE_STATES as readonly string[]).includes(f.state)) return `filter.state must be one of ${MESSAGE_STATES.join(', ')}`;
    filter.state = f.state as MessageState;
  }
  return filter;
}

function parseQuarantineRequest(v: Record<string, unknown>): QuarantineControlRequest | string {
  const op = String(v.op).slice('quarantine-'.length);
  if (!(QUARANTINE_OPS as readonly string[]).includes(op)) return `unknown op ${JSON.stringify(v.op)}`;
  const out: { op: `quarantine-${QuarantineOp}`; ids?: string[]; all?: boolean; receivedBefore?: number } = { op: `quarantine-${op as QuarantineOp}` };
  const sel = parseIdsAndAll(v, out);
  if (sel) return sel;
  if (v.receivedBefore !== undefined) {
    if (typeof v.receivedBefore !== 'number' || !Number.isFinite(v.receivedBefore)) return 'receivedBefore must be a time in milliseconds since the epoch';
    out.receivedBefore = v.receivedBefore;
  }
  if ((out.ids === undefined || out.ids.length === 0) && !out.all && out.receivedBefore === undefined) return 'no messages selected: give ids, all, or receivedBefore';
  return out;
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** Listens on the spool's control socket. Commands run one after another, in arrival order. */
export async function startControlServer(opts: { readonly spoolDir: string; readonly admin: QueueAdmin; readonly quarantine?: QuarantineAdmin; readonly catalog?: CatalogState; readonly outbound?: OutboundSwitchHandle; readonly log: Logger }): Promise<ControlServer> {
  const path = controlSocketPath(opts.spoolDir);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new Error(`the control socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes; choose a shorter dataDir`);
  }
  // A socket file left by a process that died; we hold the spool lock, so it is nobody's.
  await unlink(path).catch(() => undefined);
  const log = opts.log;
  let chain: Promise<unknown> = Promise.resolve();
  const conns = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    let started = false;
    const send = (r: ControlReply): void => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`);
    };
    /** One answer line (or the error), then the end of the connection. */
    const answer = (work: Promise<ControlReply>): void => {
      void work.then(send, (err: unknown) => send({ error: err instanceof Error ? err.message : String(err) })).then(() => sock.end());
    };
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      if (started) return;
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl === -1) {
        if (buf.length > MAX_REQUEST) {
          send({ error: 'request too long' });
          sock.end();
        }
        return;
      }
      started = true;
      let req: AnyControlRequest | string;
      try {
        req = parseControlRequest(JSON.parse(buf.slice(0, nl)));
      } catch {
        req = 'request is not JSON';
      }
      if (typeof req === 'string') {
        send({ error: req });
        sock.end();
        return;
      }
      if (req.op === 'status') {
        // Answered at once, beside any command under way.
        send(opts.catalog ? { status: opts.catalog.progress() } : { error: 'this server does not report its catalog' });
        sock.end();
        return;
      }
      if (req.op === 'outbound') {
        const sw = opts.outbound;
        const by = req.operator ?? 'control socket';
        const work = !sw ? Promise.reject(new Error('this server has no outbound switch')) : req.action === 'status' ? Promise.resolve(sw.status()) : req.action === 'stop' ? sw.stop(by, req.reason) : sw.start(by);
        answer(work.then((outbound) => ({ outbound })));
        return;
      }
      if (req.op === 'summary') {
        // From memory, beside any command under way.
        answer(opts.admin.summarize(req.filter ?? {}, req.top ?? 10).then((summary) => ({ summary })));
        return;
      }
      const request = req;
      const cat = opts.catalog;
      if (cat && !isQuarantineRequest(request) && cat.progress().state === 'loading') {
        send({ loading: cat.progress() });
        const note = setInterval(() => send({ loading: cat.progress() }), LOADING_NOTE_MS);
        void cat.whenLoaded().then(() => clearInterval(note));
        sock.on('close', () => clearInterval(note));
      }
      const progress = (p: AdminResult): void => send({ progress: p });
      let work: () => Promise<AdminResult>;
      if (isQuarantineRequest(request)) {
        const q = opts.quarantine;
        log.info({ event: 'quarantine-admin-request', op: request.op, ids: request.ids?.length, all: request.all, receivedBefore: request.receivedBefore }, `${request.op} requested`);
        work = () => (q ? q.run(quarantineOpOf(request), request, progress) : Promise.reject(new Error('this server does not manage a quarantine')));
      } else {
        log.info({ event: 'queue-admin-request', op: request.op, ids: request.ids?.length, filter: request.filter, all: request.all, operator: request.operator, ...(request.countOnly ? { countOnly: true } : {}) }, `queue ${request.op} requested`);
        // A count answers from the live catalog: no file is read, so it is quick at any size.
        work = request.countOnly ? async () => ({ matched: await opts.admin.count(request.op, request), changed: 0, missing: 0 }) : () => opts.admin.run(request.op, request, progress);
      }
      const run = chain.then(work);
      chain = run.catch(() => undefined);
      run.then(
        (r) => {
          send({ done: r });
          sock.end();
        },
        (err: unknown) => {
          log.error({ event: 'queue-admin-error', op: request.op, err }, 'queue command failed');
          send({ error: err instanceof Error ? err.message : String(err) });
          sock.end();
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, 0o600);
  return {
    path,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of conns) c.end();
      });
      // Let a command under way finish: it is changing the spool.
      await chain;
      await unlink(path).catch(() => undefined);
    },
  };
}

/** The server did not answer on its socket. */
export class ControlUnavailableError extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(`no answer on the control socket ${path} (${code})`);
    this.name = 'ControlUnavailableError';
  }
}

/** Asks the server how far its start-up scan is; undefined when it does not say. */
export async function controlStatus(spoolDir: string): Promise<LoadProgress | undefined> {
  let status: LoadProgress | undefined;
  await exchange(spoolDir, { op: 'status' }, (msg) => {
    if ('status' in msg) status = msg.status;
    return true;
  }).catch((err: unknown) => {
    if (err instanceof ControlUnavailableError) return;
    throw err;
  });
  return status;
}

/** `queue list --summary` from the running server; undefined when no server answers on the socket. */
export async function controlSummary(spoolDir: string, req: SummaryControlRequest): Promise<QueueSummary | undefined> {
  let summary: QueueSummary | undefined;
  await exchange(spoolDir, req, (msg) => {
    if ('summary' in msg) summary = msg.summary;
    else if ('error' in msg) throw new Error(`the server refused the summary: ${msg.error}`);
    return 'summary' in msg || 'error' in msg;
  }).catch((err: unknown) => {
    if (err instanceof ControlUnavailableError) return;
    throw err;
  });
  return summary;
}

/** The switch of the running server after `req`; undefined when no server answers on the socket. */
export async function controlOutbound(spoolDir: string, req: OutboundControlRequest): Promise<OutboundSwitchState | undefined> {
  let state: OutboundSwitchState | undefined;
  await exchange(spoolDir, req, (msg) => {
    if ('outbound' in msg) state = msg.outbound;
    else if ('error' in msg) throw new Error(`the server refused: ${msg.error}`);
    return 'outbound' in msg || 'error' in msg;
  }).catch((err: unknown) => {
    if (err instanceof ControlUnavailableError) return;
    throw err;
  });
  return state;
}

/**
 * Sends one request to the server; resolves its result, calling `onProgress` on the way and
 * `onLoading` while the server waits for its catalog before it starts.
 */
export function controlRequest(spoolDir: string, req: ControlRequest, onProgress?: (r: AdminResult) => void, onLoading?: (p: LoadProgress) => void): Promise<AdminResult> {
  let result: AdminResult | undefined;
  return exchange(spoolDir, req, (msg) => {
    if ('progress' in msg) onProgress?.(msg.progress);
    else if ('loading' in msg) onLoading?.(msg.loading);
    else if ('done' in msg) {
      result = msg.done;
      return true;
    } else if ('error' in msg) throw new Error(`the server refused the command: ${msg.error}`);
    return false;
  }).then(() => result!);
}

/** One request, then each reply line to `onReply` until it returns true (done) or throws. */
function exchange(spoolDir: string, req: AnyControlRequest, onReply: (msg: ControlReply) => boolean): Promise<void> {
  const path = controlSocketPath(spoolDir);
  return new Promise((resolve, reject) => {
    let settled = false;
    let connected = false;
    let buf = '';
    const finish = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    const sock = net.connect(path, () => {
      connected = true;
      sock.write(`${JSON.stringify(req)}\n`);
    });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: ControlReply;
        try {
          msg = JSON.parse(line) as ControlReply;
        } catch {
          return finish(new Error(`unreadable reply from the server: ${line.slice(0, 200)}`));
        }
        try {
          if (onReply(msg)) return finish(undefined);
        } catch (err) {
          return finish(err instanceof Error ? err : new Error(String(err)));
        }
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => finish(connected ? err : new ControlUnavailableError(path, err.code ?? err.message)));
    sock.on('close', () => finish(new Error('the server closed the control connection before the command finished')));
  });
}
