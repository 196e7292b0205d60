// What the CLI commands that read the shared store have in common: open the store the config
// names, say clearly when it cannot be reached, and close it whatever happens; and the shape of
// the report commands (`dmarc report`, `tlsrpt report`): --domain, --since, --json, checked alike.
import type { Command } from 'commander';
import type { Config } from '../../config/load.ts';
import { parseDuration } from '../../config/units.ts';
import { openStore } from '../../app/store.ts';
import type { Store } from '../../store/store.ts';
import { silentLogger } from '../../observe/log.ts';
import { CliError, EXIT, configFrom } from './index.ts';

/** Runs `fn` with the configured store open (works whether the server runs or not); closes it afterwards. */
export async function withStore<T>(config: Config, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(config, silentLogger());
  try {
    const health = await store.health();
    if (!health.ok) throw new CliError(`cannot reach the ${health.backend} store (store.${health.backend}): ${health.error ?? 'no answer'}; start it or correct the store settings`);
    return await fn(store);
  } finally {
    await store.close();
  }
}

export interface ReportQuery {
  readonly config: Config;
  readonly store: Store;
  /** ms since the epoch: reports whose period ended since then. */
  readonly since: number;
  readonly sinceText: string;
  readonly domain?: string;
}

/** `<parent> report [--domain D] [--since 7d] [--json]`: `summarize` from the store, printed as JSON or by `text`. */
export function registerReportCommand<S>(parent: Command, description: string, summarize: (q: ReportQuery) => Promise<S>, text: (s: S, q: ReportQuery) => string): void {
  parent
    .command('report')
    .description(description)
    .option('--domain <domain>', 'only this domain')
    .option('--since <duration>', 'reports whose period ended within this long, e.g. 24h, 7d, 30d', '7d')
    .option('--json', 'print the summary as JSON')
    .action(async (opts: { domain?: string; since: string; json?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      const ms = parseDuration(opts.since);
      if (ms === undefined || ms <= 0) throw new CliError(`--since ${JSON.stringify(opts.since)} is not a duration; write e.g. 24h, 7d or 30d`, EXIT.usage);
      if (opts.domain !== undefined && !/^[a-z0-9.-]+\.?$/i.test(opts.domain)) throw new CliError(`--domain ${JSON.stringify(opts.domain)} is not a domain name; write e.g. example.org`, EXIT.usage);
      await withStore(config, async (store) => {
        const q: ReportQuery = { config, store, since: Date.now() - ms, sinceText: opts.since, ...(opts.domain ? { domain: opts.domain } : {}) };
        const summary = await summarize(q);
        process.stdout.write(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : text(summary, q));
      });
    });
}
