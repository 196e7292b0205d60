// `mailward serve`: start the server and run until SIGTERM/SIGINT, then stop gracefully;
// SIGHUP reloads the config (see app/live.ts for what a reload can change).
import type { Command } from 'commander';
import { startMailward } from '../../app/compose.ts';
import { createLogger } from '../../observe/log.ts';
import { enterUnprivileged } from '../../app/privileges.ts';
import { prepareDataDir } from '../../app/preflight.ts';
import { configFrom } from './index.ts';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the mail server (listeners, queue and delivery) in the foreground')
    .action(async (_opts, cmd: Command) => {
      const config = configFrom(cmd);
      const log = createLogger(config.log);
      // Root with `user:` set binds the listeners and switches user here, before any mail is read.
      const bound = await enterUnprivileged(config, log, () => prepareDataDir(config));
      const server = await startMailward(config, { log, ...(bound ? { bound } : {}) });
      // SIGHUP: read the config again; a broken one is refused and the old one stays in force.
      const reload = (): void => {
        try {
          server.reload(configFrom(cmd));
        } catch (err) {
          log.error({ event: 'reload', applied: false, err: err instanceof Error ? err.message : String(err) }, 'config reload refused; the running config stays in force');
        }
      };
      process.on('SIGHUP', reload);
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          log.info({ signal }, 'stopping');
          server.stop().then(resolve, (err: unknown) => {
            log.error({ err: String(err) }, 'error while stopping');
            resolve();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      process.off('SIGHUP', reload);
      log.flush();
    });
}
