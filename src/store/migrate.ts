// Copies every live key from one store to another (`mailward store migrate`, SQLite → Redis),
// keeping the remaining TTLs. Each key is overwritten in the target, so an interrupted run can
// simply be started again. Run it with the mail server stopped, or changes made meanwhile may be lost.
import type { Store } from './store.ts';

export interface MigrateProgress {
  /** Keys copied so far. */
  readonly migrated: number;
  /** Keys that expired (or vanished) between listing and copying. */
  readonly skipped: number;
  /** The key just handled. */
  readonly key: string;
}

export interface MigrateResult {
  readonly migrated: number;
  readonly skipped: number;
}

/** Keys copied at the same time: enough to hide round-trip latency to a remote Redis. */
const PARALLEL = 16;
/** Members or fields written per call, to bound a single Redis command's size. */
const CHUNK = 1000;

export async function migrateStore(from: Store, to: Store, onProgress?: (p: MigrateProgress) => void): Promise<MigrateResult> {
  let migrated = 0;
  let skipped = 0;
  // Async generators queue concurrent next() calls, so the workers can share one scan.
  const keys = from.scan('')[Symbol.asyncIterator]();

  const worker = async (): Promise<void> => {
    for (let r = await keys.next(); r.done !== true; r = await keys.next()) {
      const key = r.value;
      if (await copyKey(from, to, key)) migrated++;
      else skipped++;
      onProgress?.({ migrated, skipped, key });
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return { migrated, skipped };
}

/** Copies one key; false when it is gone from the source by now. */
async function copyKey(from: Store, to: Store, key: string): Promise<boolean> {
  const kind = await from.type(key);
  const ttl = await from.ttl(key);
  if (kind === null || ttl === null) return false;
  const ttlMs = ttl === Infinity ? undefined : Math.max(1, ttl);

  switch (kind) {
    case 'string': {
      const value = await from.get(key);
      if (value === null) return false;
      await to.set(key, value, ttlMs);
      return true;
    }
    case 'set': {
      const members = await from.smembers(key);
      if (members.length === 0) return false;
      await to.del(key);
      // The TTL applies when the set is created, i.e. with the first chunk.
      for (let i = 0; i < members.length; i += CHUNK) await to.sadd(key, members.slice(i, i + CHUNK), ttlMs);
      return true;
    }
    case 'hash': {
      const entries = [...(await from.hgetall(key)).entries()];
      if (entries.length === 0) return false;
      await to.del(key);
      for (let i = 0; i < entries.length; i += CHUNK) await to.hincrMany(key, entries.slice(i, i + CHUNK), ttlMs);
      return true;
    }
  }
}
