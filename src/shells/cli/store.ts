// `mailward store migrate`: copy the shared state (greylist, counters, Bayes tokens, ...) from
// the SQLite file to Redis, for an operator who outgrows one node. Run it with the server stopped.
import type { Command } from 'commander';
import { createStore } from '../../store/create.ts';
import { migrateStore } from '../../store/migrate.ts';
import { silentLogger } from '../../observe/log.ts';
import { CliError, EXIT, configFrom } from './index.ts';

export function registerStore(program: Command): void {
  const store = program.command('store').description('the shared state store (SQLite or Redis)');
  store
    .command('migrate')
    .description('copy every key from the SQLite state file to Redis (keeps the remaining TTLs)')
    .requiredOption('--to <url>', 'the Redis to copy into, e.g. redis://127.0.0.1:6379')
    .option('--key-prefix <prefix>', 'key prefix in Redis (default: store.redis.keyPrefix)')
    .action(async (opts: { to: string; keyPrefix?: string }, cmd: Command) => {
      const config = configFrom(cmd);
      if (!/^rediss?:\/\//.test(opts.to)) throw new CliError(`--to ${JSON.stringify(opts.to)} is not a Redis URL; write e.g. redis://127.0.0.1:6379`, EXIT.usage);
      const log = silentLogger();
      const from = await createStore({ backend: 'sqlite', sqlite: { path: config.paths.store }, redis: { keyPrefix: '', timeoutMs: 1000 } }, log);
      const to = await createStore({ backend: 'redis', sqlite: { path: config.paths.store }, redis: { url: opts.to, keyPrefix: opts.keyPrefix ?? config.store.redis.keyPrefix, timeoutMs: 5000 } }, log);
      try {
        const health = await to.health();
        if (!health.ok) throw new CliError(`cannot reach Redis at --to: ${health.error ?? 'no answer'}; start it or correct the URL`);
        const tty = process.stderr.isTTY;
        const result = await migrateStore(from, to, (p) => {
          if (tty && p.migrated % 1000 === 0) process.stderr.write(`\r${p.migrated} keys copied`);
        });
        if (tty) process.stderr.write('\n');
        process.stdout.write(`migrated ${result.migrated} keys to ${opts.to.replace(/\/\/[^@/]*@/, '//')} (${result.skipped} expired meanwhile)\n`);
      } finally {
        await from.close();
        await to.close();
      }
    });
}
