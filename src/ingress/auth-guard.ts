// Counts failed logins per client (IPv4 address, or IPv6 /64) and per login name in the shared
// store, so that every node sees the same figures. Past the limit the client is blocked for a
// while: its AUTH attempts and new connections get 421. Password guessing then costs the
// attacker a block per handful of tries instead of one scrypt verify per second per connection.
import { isIP } from 'node:net';
import type { Logger } from '../observe/log.ts';
import type { Store } from '../store/store.ts';

export interface AuthGuardOptions {
  /** Failed logins from one client within `windowMs` before it is blocked. */
  readonly maxFailures: number;
  /** Failed logins for one login name (from anywhere) within `windowMs` before the client trying it is blocked. */
  readonly maxLoginFailures: number;
  readonly windowMs: number;
  readonly blockMs: number;
}

/** The unit an attacker controls: one IPv4 address, or a /64 of IPv6 (one customer's prefix). */
export function clientKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const full = expandIPv6(address);
  return `${full.slice(0, 4).join(':')}::/64`;
}

function expandIPv6(a: string): string[] {
  const [head = '', tail] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - h.length - t.length;
  return [...h, ...Array<string>(Math.max(missing, 0)).fill('0'), ...t].map((x) => x.toLowerCase());
}

export class AuthGuard {
  constructor(
    private readonly store: Store,
    private readonly opts: AuthGuardOptions,
    private readonly log: Logger,
  ) {}

  /** True when the client is blocked. Rejects with StoreUnavailableError when the store is down. */
  async isBlocked(client: string): Promise<boolean> {
    return (await this.store.get(`auth:block:${clientKey(client)}`)) !== null;
  }

  /** Records a failure; resolves true when the client is now blocked. */
  async failed(client: string, login: string): Promise<boolean> {
    const ck = clientKey(client);
    const [byClient, byLogin] = await Promise.all([
      this.store.hit(`auth:fail:client:${ck}`, this.opts.windowMs),
      this.store.hit(`auth:fail:login:${login.toLowerCase()}`, this.opts.windowMs),
    ]);
    if (byClient < this.opts.maxFailures && byLogin < this.opts.maxLoginFailures) return false;
    const fresh = await this.store.setIfAbsent(`auth:block:${ck}`, String(Date.now()), this.opts.blockMs);
    if (fresh) {
      this.log.warn(
        { event: 'auth-block', client: ck, login, failuresFromClient: Math.round(byClient), failuresForLogin: Math.round(byLogin), blockMs: this.opts.blockMs },
        `blocked ${ck} after repeated failed logins`,
      );
    }
    return true;
  }
}
