// The local submission socket of `mailward sendmail`: a unix socket whose callers are identified
// by the kernel, never by what they say. Node has no SO_PEERCRED, so the caller proves its uid
// with a file: the server sends a random nonce, the caller creates <socket>.d/<nonce> (mode 0644:
// only it may write, the server running as its own user may read; the nonce as content) in a sticky, unlistable folder, and the file's owner — set by the kernel
// from the creator's fsuid — is who it is (docs/decisions/0022-sendmail.md). Then SMTP begins,
// the session already logged in as the login that uid maps to.
import net from 'node:net';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { chmodSync, constants, lstatSync, mkdirSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { newSessionId, type SessionHost } from './listener.ts';

/** The greeting line before SMTP: `MAILWARD-LOCAL 1 <nonce> <proof folder>`. */
export const LOCAL_PROTOCOL = 'MAILWARD-LOCAL 1';
const HANDSHAKE_MS = 10_000;
const NONCE_BYTES = 16;

/** Who a proven uid is, or why it may not submit (`code` is the sysexits code the client exits with). */
export type LocalIdentity = { readonly ok: true; readonly login: string; readonly provenance: string } | { readonly ok: false; readonly code: number; readonly reason: string };

export interface LocalSubmitOptions {
  readonly socketPath: string;
  readonly host: SessionHost;
  readonly identify: (uid: number) => LocalIdentity;
  readonly maxConnections: number;
  onEvent(event: string, detail: Record<string, unknown>): void;
}

export interface LocalSubmitListener {
  readonly path: string;
  close(): Promise<void>;
}

/** The mode of a proof file: written by its owner alone, read by the server (another user). */
export const PROOF_MODE = 0o644;

/** The folder the callers write their proof files into. */
export const proofDir = (socketPath: string): string => `${socketPath}.d`;

/** Reads `<dir>/<nonce>` without following links and returns its owner, if it is a valid proof. */
export async function proofOwner(dir: string, nonce: string): Promise<number | string> {
  const file = path.join(dir, nonce);
  let fh;
  try {
    // O_NOFOLLOW: a symlink to someone else's file proves nothing; O_NONBLOCK: a FIFO never blocks us.
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    return `no proof file (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  try {
    const st = await fh.stat();
    // A hard link (nlink > 1) or a file someone else can write could be another user's file
    // moved or linked here; a file only its owner can write, holding our fresh nonce, was
    // written by that owner (or by root). Readable by all (0644), because the server runs as
    // its own user and must read another user's file; the nonce is used once and the folder
    // cannot be listed (docs/decisions/0039-sendmail-proof-mode.md).
    if (!st.isFile()) return 'proof is not a regular file';
    if (st.nlink !== 1) return 'proof file has other links';
    if ((st.mode & 0o7777) !== PROOF_MODE) return `proof file mode is ${(st.mode & 0o7777).toString(8)}, not 644`;
    const content = (await fh.readFile()).toString('latin1');
    if (content !== nonce) return 'proof file does not hold the nonce';
    return st.uid;
  } finally {
    await fh.close();
    try {
      unlinkSync(file);
    } catch {
      // The owner of a sticky folder may remove any file in it; a file already gone is fine.
    }
  }
}

/** Reads one LF-terminated line of at most 64 bytes; the bytes after it stay in the socket. */
function readLine(socket: Socket, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const done = (line: string | undefined, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve(line);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(10);
      if (nl >= 0) done(buf.subarray(0, nl).toString('latin1').replace(/\r$/, ''), buf.subarray(nl + 1));
      else if (buf.length > 64) done(undefined);
    };
    const onEnd = (): void => done(undefined);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.resume();
  });
}

/** Makes the socket's folders: the proof folder sticky and writable by all but listable by none. */
function prepare(socketPath: string): void {
  mkdirSync(path.dirname(socketPath), { recursive: true });
  const dir = proofDir(socketPath);
  mkdirSync(dir, { recursive: true });
  // 1733: anyone may create a file, nobody else may list, rename or remove it (sticky).
  chmodSync(dir, 0o1733);
  // Proofs left by callers that went away prove nothing later: start empty.
  for (const f of readdirSync(dir)) rmSync(path.join(dir, f), { force: true, recursive: true });
  try {
    if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
  } catch {
    // No old socket.
  }
}

export async function startLocalSubmit(opts: LocalSubmitOptions): Promise<LocalSubmitListener> {
  prepare(opts.socketPath);
  const dir = proofDir(opts.socketPath);
  const sockets = new Set<Socket>();
  let closing = false;

  const refuse = (socket: Socket, code: number, text: string): void => {
    socket.end(`NO ${code} ${text}\n`);
  };

  const accept = async (socket: Socket): Promise<void> => {
    if (closing) return refuse(socket, 75, 'server shutting down');
    if (sockets.size > opts.maxConnections) return refuse(socket, 75, 'too many local connections');
    const nonce = randomBytes(NONCE_BYTES).toString('hex');
    socket.write(`${LOCAL_PROTOCOL} ${nonce} ${dir}\n`);
    const line = await readLine(socket, HANDSHAKE_MS);
    if (line !== 'PROVE') {
      opts.onEvent('local-refused', { reason: line === undefined ? 'no proof in time' : 'bad handshake line' });
      return refuse(socket, 64, 'expected PROVE');
    }
    const owner = await proofOwner(dir, nonce);
    if (typeof owner === 'string') {
      opts.onEvent('local-refused', { reason: owner });
      return refuse(socket, 77, `identity not proven: ${owner}`);
    }
    const who = opts.identify(owner);
    if (!who.ok) {
      opts.onEvent('local-refused', { uid: owner, reason: who.reason });
      return refuse(socket, who.code, who.reason);
    }
    socket.write(`OK ${who.login}\n`);
    await opts.host.serve(socket, {
      info: { id: newSessionId(), listener: 'sendmail', remoteAddress: who.provenance, remotePort: 0, localAddress: opts.socketPath, localPort: 0, localLogin: who.login },
    });
  };

  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', (err: NodeJS.ErrnoException) => opts.onEvent('socket-error', { code: err.code, error: err.message }));
    accept(socket).catch((err: unknown) => {
      opts.onEvent('listener-error', { error: err instanceof Error ? err.message : String(err) });
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(new Error(`sendmail.socket: cannot listen on ${opts.socketPath}: ${err.message}; make its folder exist and writable by the server, or set sendmail.enabled: false`));
    server.once('error', onError);
    server.listen(opts.socketPath, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // Anyone who can reach the folder may connect; who they are is proven, not assumed.
  chmodSync(opts.socketPath, 0o666);
  return {
    path: opts.socketPath,
    async close() {
      if (closing) return;
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await opts.host.close();
      for (const s of sockets) s.destroy();
      await stopped;
    },
  };
}
