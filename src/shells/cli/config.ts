// `mailward check-config` and `mailward config show`: validate the config without starting
// anything, and print the configuration in force with every default filled in.
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { compileChecks } from '../../app/compose.ts';
import { preflight } from '../../app/preflight.ts';
import { configFrom } from './index.ts';
import { BUILT_IN, readConfigFile } from '../../config/load.ts';
import { ConfigSchema } from '../../config/schema.ts';

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
    .option('--changed', 'print only the settings that differ from the defaults, one "key = value" a line (as postconf -n)')
    .action((opts: { changed?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      if (!opts.changed) {
        process.stdout.write(stringify(config));
        return;
      }
      // The file's settings through the schema (units parsed, defaults filled in), against the
      // schema's own defaults: a key written with its default value is not a change.
      const written = config.source === BUILT_IN ? {} : readConfigFile(config.source);
      const lines = changedSettings(ConfigSchema.parse(written), ConfigSchema.parse({}));
      process.stdout.write(lines.map((l) => `${l}\n`).join(''));
    });
}

const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `key = value` for every leaf of `actual` that differs from `defaults` (objects compared key by key). */
export function changedSettings(actual: unknown, defaults: unknown, prefix = ''): string[] {
  if (isPlain(actual) && isPlain(defaults)) {
    const keys = [...new Set([...Object.keys(defaults), ...Object.keys(actual)])].sort();
    return keys.flatMap((k) => {
      const key = prefix === '' ? k : `${prefix}.${k}`;
      if (!(k in actual) || actual[k] === undefined) return k in defaults && defaults[k] !== undefined ? [`${key} = (not set)`] : [];
      return changedSettings(actual[k], defaults[k], key);
    });
  }
  if (isPlain(actual)) return changedSettings(actual, {}, prefix);
  return JSON.stringify(actual) === JSON.stringify(defaults) ? [] : [`${prefix} = ${JSON.stringify(actual)}`];
}
