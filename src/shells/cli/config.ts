// `mailward check-config` and `mailward config show`: validate the config without starting
// anything, and print the configuration in force with every default filled in.
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { compileChecks } from '../../app/compose.ts';
import { preflight } from '../../app/preflight.ts';
import { configFrom } from './index.ts';

export function registerConfig(program: Command): void {
  program
    .command('check-config')
    .description('validate the config file (schema, safety rules, check options) and the files and folders it names (dataDir, TLS, password files, DKIM keys), and exit')
    .action((_opts, cmd: Command) => {
      const config = configFrom(cmd);
      compileChecks(config);
      // The files and folders serve needs: the same checks, nothing created.
      preflight(config);
      const listeners = config.listeners.map((l) => `${l.name} (${l.kind}) on ${l.host}:${l.port}`).join(', ');
      process.stdout.write(`config OK: ${config.source}\n  domains: ${config.domains.join(', ')}\n  listeners: ${listeners || 'none'}\n  data: ${config.dataDir}\n`);
      for (const w of config.warnings) process.stdout.write(`warning at ${w.path} (acknowledged by relay.allowLocalTrust): ${w.message}. Fix: ${w.fix}\n`);
    });
  const cfg = program.command('config').description('inspect the configuration');
  cfg
    .command('show')
    .description('print the configuration in force, with defaults filled in, as YAML')
    .action((_opts, cmd: Command) => {
      const config = configFrom(cmd);
      process.stdout.write(stringify(config));
    });
}
