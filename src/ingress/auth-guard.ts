// Password guessing limits, counted in the shared store so every node sees the same figures.
// A failure only ever slows or refuses AUTH — never the connection, never mail that does not
// log in: behind a tunnel or NAT every client is one address, and a lock on the address would let
// anyone shut off inbound mail with five guesses. So we count per (login, client network), per
// client network over all logins, and per login from anywhere:
// - a login is locked only from the networks that failed it (its owner elsewhere still gets in);
// - a network that fails too many logins gets no AUTH at all for a while (a spray);
// - a login failed from everywhere gets a growing delay before each try (slower, never locked).
// Every limit is keyed by the name typed, so an unknown login meets the same limits, replies and
// work (a dummy scrypt) as a known one: the replies do not tell which logins exist.
import { setTimeout as sleep } from 'node:timers/promises';
import { HashPoolFullError } from '../core/password.ts';
import { networkOf, parseIp } from '../core/net.ts';
import { temp, perm, type SmtpReply } from '../core/reply.ts';
import type { Logger } from '../observe/log.ts';
import type { Store } from '../store/store.ts';

export interface AuthGuardOptions {
  /** Failures of one login from one network within `windowMs` before it is locked there. */
  readonly maxFailures: number;
  /** Failures from one network over all logins within `windowMs` before its AUTH is refused. */
  readonly maxNetworkFailures: number;
  /** Failures of one login (from anywhere) within `windowMs` before its tries are delayed. */
  readonly maxLoginFailures: number;
  /** First delay; doubles per further failure up to `maxDelayMs`. */
  readonly delayMs: number;
  readonly maxDelayMs: number;
  readonly windowMs: number;
  readonly blockMs: number;
}

/** The unit an attacker controls cheaply: an IPv4 /24 or an IPv6 /64 (one customer's prefix). */
export function clientNetwork(address: string): string {
  const ip = parseIp(address);
  return ip ? networkOf(ip, 24, 64) : address;
}

export type AuthOutcome =
  | { readonly ok: true; readonly result: 'success' }
  | { readonly ok: false; readonly result: 'failure' | 'locked' | 'busy' | 'unavailable' | 'gone'; readonly reply: SmtpReply; readonly detail?: Record<string, unknown> };

// RFC 4954 §6: 454 4.7.0 is a temporary authentication failure (try later); 535 5.7.8 bad
// credentials. A locked login and a refused network hear the same reply.
export const Replies = {
  invalid: perm('5.7.8', 'Authentication credentials invalid', 535),
  locked: temp('4.7.0', 'Too many failed logins, try again later', 454),
  temporary: temp('4.7.0', 'Temporary authentication failure', 454),
} as const;

export class AuthGuard {
  constructor(
    private readonly store: Store,
    private readonly opts: AuthGuardOptions,
    private readonly log: Logger,
  ) {}

  /**
   * One AUTH attempt: refused at once when the login is locked from this network or the network
   * is refused; otherwise delayed as the login's failures say, then `verify` (the scrypt check)
   * runs and a failure is counted. A store outage defers (454): without the counters we cannot
   * tell a guesser from a user. A full hashing pool defers too and counts nothing.
   */
  async attempt(client: string, login: string, verify: () => Promise<boolean>, signal?: AbortSignal): Promise<AuthOutcome> {
    const net = clientNetwork(client);
    const keys = this.keys(net, login);
    try {
      const [netBlocked, loginBlocked, loginFailures] = await Promise.all([
        this.store.get(keys.blockNet),
        this.store.get(keys.blockPair),
        this.store.hit(keys.login, this.opts.windowMs, 0),
      ]);
      if (netBlocked !== null || loginBlocked !== null) {
        return { ok: false, result: 'locked', reply: Replies.locked, detail: { network: net, lock: netBlocked !== null ? 'network' : 'login' } };
      }
      const wait = this.delayFor(loginFailures);
      if (wait > 0) await sleep(wait, undefined, signal ? { signal } : {}).catch(() => undefined);
      if (signal?.aborted) return { ok: false, result: 'gone', reply: Replies.temporary };
      let ok: boolean;
      try {
        ok = await verify();
      } catch (err) {
        if (!(err instanceof HashPoolFullError)) {
          // The password store cannot answer (Dovecot's auth socket down): try later, count nothing.
          this.log.error({ event: 'auth-backend-unavailable', network: net, err: String(err) }, `cannot check the password: ${String(err)}; deferring AUTH (check auth.backend and auth.dovecot.socket)`);
          return { ok: false, result: 'unavailable', reply: Replies.temporary };
        }
        this.log.warn({ event: 'auth-busy', network: net, err: err.message }, 'every password hashing thread is busy and the queue is full; deferring AUTH (auth.hashThreads, auth.hashQueue)');
        return { ok: false, result: 'busy', reply: Replies.temporary };
      }
      if (ok) return { ok: true, result: 'success' };
      const locked = await this.failed(net, login, keys);
      return { ok: false, result: 'failure', reply: locked ? Replies.locked : Replies.invalid, ...(wait > 0 || locked ? { detail: { network: net, ...(wait > 0 ? { delayMs: wait } : {}), ...(locked ? { lock: locked } : {}) } } : {}) };
    } catch (err) {
      this.log.warn({ event: 'auth-unavailable', network: net, err: String(err) }, 'cannot check login attempts; deferring AUTH');
      return { ok: false, result: 'unavailable', reply: Replies.temporary };
    }
  }

  /** The delay before a try of a login that failed `failures` times lately (from anywhere). */
  delayFor(failures: number): number {
    const over = Math.round(failures) - this.opts.maxLoginFailures;
    if (over < 0 || this.opts.delayMs <= 0) return 0;
    return Math.min(this.opts.delayMs * 2 ** Math.min(over, 30), this.opts.maxDelayMs);
  }

  private keys(net: string, login: string): { pair: string; net: string; login: string; blockPair: string; blockNet: string } {
    const l = login.toLowerCase();
    return {
      pair: `auth:fail:pair:${net}|${l}`,
      net: `auth:fail:net:${net}`,
      login: `auth:fail:login:${l}`,
      blockPair: `auth:block:pair:${net}|${l}`,
      blockNet: `auth:block:net:${net}`,
    };
  }

  /** Counts a failure; returns which lock (if any) it starts or continues. */
  private async failed(net: string, login: string, k: ReturnType<AuthGuard['keys']>): Promise<'login' | 'network' | undefined> {
    const [byPair, byNet, byLogin] = await Promise.all([
      this.store.hit(k.pair, this.opts.windowMs),
      this.store.hit(k.net, this.opts.windowMs),
      this.store.hit(k.login, this.opts.windowMs),
    ]);
    const counts = { failuresFromNetwork: Math.round(byNet), failuresForLoginFromNetwork: Math.round(byPair), failuresForLogin: Math.round(byLogin) };
    let lock: 'login' | 'network' | undefined;
    if (byNet >= this.opts.maxNetworkFailures) {
      lock = 'network';
      if (await this.store.setIfAbsent(k.blockNet, String(Date.now()), this.opts.blockMs)) {
        this.log.warn({ event: 'auth-block', scope: 'network', network: net, login, ...counts, blockMs: this.opts.blockMs }, `refusing AUTH from ${net} after repeated failed logins (auth.maxNetworkFailures)`);
      }
    }
    if (byPair >= this.opts.maxFailures) {
      lock ??= 'login';
      if (await this.store.setIfAbsent(k.blockPair, String(Date.now()), this.opts.blockMs)) {
        this.log.warn({ event: 'auth-block', scope: 'login', network: net, login, ...counts, blockMs: this.opts.blockMs }, `locked login ${login} from ${net} after repeated failed logins (auth.maxFailures)`);
      }
    }
    return lock;
  }
}
