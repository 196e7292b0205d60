// `mailward serve`: start the server and run until SIGTERM/SIGINT, then stop gracefully.
import type { Command } from 'commander';
import { startMailward } from '../../app/compose.ts';
import { createLogger } from '../../observe/log.ts';
import { configFrom } from './index.ts';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the mail server (listeners, queue and delivery) in the foreground')
    .action(async (_opts, cmd: Command) => {
      const config = configFrom(cmd);
      const log = createLogger(config.log);
      const server = await startMailward(config, { log });
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
      log.flush();
    });
}
