// Opens the store the config asks for. SQLite opens synchronously and a failure is a fatal
// configuration error; Redis is waited for briefly, and if it is down the server starts anyway
// (checks that need the store defer with 4xx) while the client keeps reconnecting.
import type { Logger } from '../observe/log.ts';
import { SqliteStore } from './sqlite.ts';
import type { Store, StoreOptions } from './store.ts';

export async function createStore(opts: StoreOptions, log: Logger): Promise<Store> {
  if (opts.backend === 'sqlite') {
    return new SqliteStore(opts.sqlite, log);
  }
  // ioredis is loaded only when the config asks for Redis (start-up time, decision 0018).
  const { RedisStore } = await import('./redis.ts');
  const store = new RedisStore(opts.redis, log);
  if (!(await store.waitReady())) store.markStartupOutage();
  return store;
}
