// Opens the shared state store the config asks for (SQLite file in dataDir, or Redis), for the
// server, the policy service and the CLI alike.
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import { createStore } from '../store/create.ts';
import type { Store } from '../store/store.ts';

export function openStore(config: Config, log: Logger): Promise<Store> {
  const r = config.store.redis;
  return createStore(
    {
      backend: config.store.backend,
      sqlite: { path: config.paths.store },
      redis: {
        keyPrefix: r.keyPrefix,
        timeoutMs: r.timeout,
        ...(r.url ? { url: r.url } : {}),
        ...(r.sentinels ? { sentinels: r.sentinels } : {}),
        ...(r.name ? { name: r.name } : {}),
        ...(r.cluster ? { cluster: r.cluster } : {}),
      },
    },
    log,
  );
}
