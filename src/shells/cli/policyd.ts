// `mailward policyd`: run as a Postfix policy service (check_policy_service) in the foreground
// until SIGTERM/SIGINT. The `policyd` section of the config chooses the checks per protocol state;
// --listen replaces its listen addresses.
import type { Command } from 'commander';
import { createPolicyService } from '../../app/policyd.ts';
import { loadConfig } from '../../config/load.ts';
import { parseListenAddress, parsePolicyd, type ListenAddress } from '../../config/policyd-schema.ts';
import { createLogger } from '../../observe/log.ts';
import { policyServerSettings, startPolicyServer } from '../policyd.ts';
import { CliError, EXIT, type GlobalOptions } from './index.ts';

export function registerPolicyd(program: Command): void {
  program
    .command('policyd')
    .description('answer Postfix policy requests (check_policy_service) with Mailward\'s checks, in the foreground')
    .option('--listen <address...>', 'tcp:HOST:PORT or unix:/path, repeatable (default: policyd.listen, tcp:127.0.0.1:10040)')
    .action(async (opts: { listen?: string[] }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      // The section is read here and taken out before the main schema sees it, so the command
      // works whether or not the main schema lists `policyd`.
      let section: unknown;
      const config = loadConfig(global.config, (raw) => {
        section = raw.policyd;
        delete raw.policyd;
      });
      const policyd = parsePolicyd(section, config.source);
      const listen: ListenAddress[] = (opts.listen ?? policyd.listen).map((text) => {
        const a = parseListenAddress(text);
        if (typeof a === 'string') throw new CliError(`--listen: ${a}; write tcp:127.0.0.1:10040 or unix:/var/spool/postfix/private/mailward`, EXIT.usage);
        return a;
      });
      const log = createLogger(config.log);
      const service = await createPolicyService(config, policyd, { log });
      let server;
      try {
        server = await startPolicyServer({
          listen,
          engine: service.engine,
          log,
          ...policyServerSettings(policyd),
        });
      } catch (err) {
        await service.close();
        throw new CliError(err instanceof Error ? err.message : String(err));
      }
      const running = server;
      await new Promise<void>((resolve) => {
        const onTerm = (): void => stop('SIGTERM');
        const onInt = (): void => stop('SIGINT');
        const stop = (signal: string): void => {
          process.off('SIGTERM', onTerm);
          process.off('SIGINT', onInt);
          log.info({ signal }, 'stopping');
          running
            .close()
            .then(() => service.close())
            .then(resolve, (err: unknown) => {
              log.error({ err: String(err) }, 'error while stopping');
              resolve();
            });
        };
        process.once('SIGTERM', onTerm);
        process.once('SIGINT', onInt);
      });
      log.flush();
    });
}
