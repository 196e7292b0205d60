// A write-behind cache in front of the SQLite store for the keys under one prefix (greylisting's):
// reads are answered from memory while fresh, writes land in memory at once and reach SQLite in
// one transaction per batch. Every other key and operation goes straight to the store.
// Safe for greylisting (docs/decisions/0041): a pass needs a first sighting at least `delay`
// old, and this process saw or read every sighting it holds; a write lost in a crash, or a row
// another process wrote that we have not re-read yet, can only greylist a sender once more.
// Not used with Redis: there the nodes share one store and must see each other's writes at once.
import type { Logger } from '../observe/log.ts';
import type { Store } from '../store/store.ts';

export interface WriteBehindOptions {
  /** Keys starting with this are cached, e.g. 'greylist:'. */
  readonly prefix: string;
  /** A clean entry is read from the store again after this long, to see other processes' writes. */
  readonly freshMs?: number;
  /** Longest a write waits in memory. */
  readonly flushMs?: number;
  /** A batch this big is written at once. */
  readonly batch?: number;
  /** Clean entries beyond this are dropped, the oldest first. */
  readonly maxEntries?: number;
  readonly log: Logger;
  readonly clock?: () => number;
}

interface Entry {
  value: string | null;
  readAt: number;
  /** TTL of the write not yet flushed; undefined when the entry is clean. */
  dirtyTtl: number | undefined;
}

export function writeBehindStore(store: Store, o: WriteBehindOptions): Store {
  const freshMs = o.freshMs ?? 30_000;
  const flushMs = o.flushMs ?? 200;
  const batch = o.batch ?? 1000;
  const maxEntries = o.maxEntries ?? 200_000;
  const clock = o.clock ?? Date.now;
  const entries = new Map<string, Entry>();
  const dirty = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();

  const evict = (): void => {
    if (entries.size <= maxEntries) return;
    for (const [k, e] of entries) {
      if (entries.size <= maxEntries) break;
      if (e.dirtyTtl === undefined) entries.delete(k);
    }
  };

  const writeOut = async (): Promise<void> => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (dirty.size === 0) return;
    const rows: Array<[string, string, number]> = [];
    for (const k of dirty) {
      const e = entries.get(k);
      if (e?.dirtyTtl !== undefined && e.value !== null) rows.push([k, e.value, e.dirtyTtl]);
      if (e) e.dirtyTtl = undefined;
    }
    dirty.clear();
    try {
      await store.setMany(rows);
    } catch (err) {
      // The store is down: forget what we hold, so the next requests meet the outage and defer
      // as they do without a cache. The lost first sightings are greylisted again, nothing passes.
      for (const [k] of rows) if (entries.get(k)?.dirtyTtl === undefined) entries.delete(k);
      o.log.warn({ event: 'store-write-behind', keys: rows.length, err: err instanceof Error ? err.message : String(err) }, 'greylisting writes lost: the state store did not take them');
    }
  };

  const flush = (): Promise<void> => (flushing = flushing.then(writeOut));

  const cached = (key: string): boolean => key.startsWith(o.prefix);

  const wrapper: Store = Object.create(store) as Store;
  return Object.assign(wrapper, {
    backend: store.backend,
    keyPrefix: store.keyPrefix,
    async get(key: string): Promise<string | null> {
      if (!cached(key)) return store.get(key);
      const e = entries.get(key);
      if (e && (e.dirtyTtl !== undefined || clock() - e.readAt < freshMs)) return e.value;
      const readAt = clock();
      const value = await store.get(key);
      // A write made while the read was out is newer than what was read.
      const now = entries.get(key);
      if (now?.dirtyTtl !== undefined) return now.value;
      entries.delete(key);
      entries.set(key, { value, readAt, dirtyTtl: undefined });
      evict();
      return value;
    },
    async set(key: string, value: string, ttlMs?: number): Promise<void> {
      if (!cached(key)) return store.set(key, value, ttlMs);
      entries.delete(key);
      entries.set(key, { value, readAt: clock(), dirtyTtl: ttlMs ?? 0 });
      dirty.add(key);
      if (dirty.size >= batch) void flush();
      else timer ??= setTimeout(() => void flush(), flushMs);
    },
    async del(key: string): Promise<boolean> {
      if (cached(key)) {
        await flush();
        entries.delete(key);
      }
      return store.del(key);
    },
    async setMany(rows: ReadonlyArray<readonly [key: string, value: string, ttlMs?: number]>): Promise<void> {
      for (const [k, v, ttl] of rows) await wrapper.set(k, v, ttl);
    },
    async close(): Promise<void> {
      // What is in memory reaches the file before it closes: a restart loses nothing.
      await flush();
      await store.close();
    },
  } satisfies Partial<Store>);
}
