// Whether a mailbox exists, asked of Dovecot's userdb through its auth-userdb socket (the
// auth-master protocol: VERSION, then USER <id> <user> service=smtp, answered USER, NOTFOUND or
// FAIL), so that mail for users Dovecot knows and Mailward's own table does not is accepted at
// RCPT, and mail for nobody is refused there (550) instead of bounced after LMTP says so.
// Answers are kept briefly: a burst of RCPTs for one user asks once, a dictionary attack of
// unknown names still asks once per name and is slowed by the session's own limits.
import { connect } from 'node:net';

export interface DovecotUserdbOptions {
  /** The auth-userdb unix socket, e.g. /run/dovecot/auth-userdb. */
  readonly socket: string;
  /** The service name Dovecot's userdb sees (%s). */
  readonly service: string;
  /** Past it the answer is in doubt: the caller defers (4xx). */
  readonly timeoutMs: number;
  /** How long "exists" and "does not exist" are remembered (0: not at all). */
  readonly positiveTtlMs: number;
  readonly negativeTtlMs: number;
  readonly clock?: () => number;
}

/** Dovecot could not be asked, or could not tell (FAIL): the answer is in doubt. */
export class DovecotUserdbError extends Error {
  override name = 'DovecotUserdbError';
}

// A cache bound, so that a name-guessing client cannot grow it without limit.
const MAX_CACHED = 10_000;
let nextId = 1;

export class DovecotUserdb {
  private readonly cache = new Map<string, { exists: boolean; until: number }>();
  private readonly clock: () => number;

  constructor(private readonly o: DovecotUserdbOptions) {
    this.clock = o.clock ?? Date.now;
  }

  /** True when Dovecot's userdb has the user, false for NOTFOUND; rejects (DovecotUserdbError) when in doubt. */
  async exists(user: string, signal?: AbortSignal): Promise<boolean> {
    const now = this.clock();
    const hit = this.cache.get(user);
    if (hit && hit.until > now) return hit.exists;
    if (hit) this.cache.delete(user);
    const exists = await this.ask(user, signal);
    const ttl = exists ? this.o.positiveTtlMs : this.o.negativeTtlMs;
    if (ttl > 0) {
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(user, { exists, until: now + ttl });
    }
    return exists;
  }

  private ask(user: string, signal?: AbortSignal): Promise<boolean> {
    // A tab or newline would end the field or the command: such a name is nobody's.
    if (/[\t\n\r\0]/.test(user)) return Promise.resolve(false);
    const id = nextId++;
    const socket = this.o.socket;
    return new Promise<boolean>((resolve, reject) => {
      const sock = connect({ path: socket });
      let buf = '';
      let done = false;
      const finish = (err: Error | undefined, found = false): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        sock.destroy();
        if (err) reject(err);
        else resolve(found);
      };
      const onAbort = (): void => finish(new DovecotUserdbError(`the lookup of ${user} in Dovecot's userdb (${socket}) was cut short`));
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => finish(new DovecotUserdbError(`no answer from Dovecot's auth-userdb socket ${socket} within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
      sock.on('error', (err: NodeJS.ErrnoException) => finish(new DovecotUserdbError(`cannot use Dovecot's auth-userdb socket ${socket}: ${err.code ?? err.message}`)));
      sock.on('close', () => finish(new DovecotUserdbError(`Dovecot's auth-userdb socket ${socket} closed the connection`)));
      // The client may send its request right after its VERSION line; the server answers in order.
      sock.write(`VERSION\t1\t0\nUSER\t${id}\t${user}\tservice=${this.o.service}\n`);
      sock.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
          const f = buf.slice(0, nl).split('\t');
          buf = buf.slice(nl + 1);
          if (f[0] === 'VERSION' && f[1] !== '1') return finish(new DovecotUserdbError(`Dovecot's auth-userdb socket speaks protocol version ${f[1]}, not 1`));
          if (f[1] !== String(id)) continue;
          if (f[0] === 'USER') return finish(undefined, true);
          if (f[0] === 'NOTFOUND') return finish(undefined, false);
          if (f[0] === 'FAIL') {
            const reason = f.find((x) => x.startsWith('reason='))?.slice(7) ?? 'no reason given';
            return finish(new DovecotUserdbError(`Dovecot's userdb could not look up ${user}: ${reason}`));
          }
        }
        if (buf.length > 65_536) finish(new DovecotUserdbError(`over-long line from Dovecot's auth-userdb socket ${socket}`));
      });
    });
  }
}
