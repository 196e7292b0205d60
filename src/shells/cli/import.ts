// `mailward import postfix`: reads an existing Postfix server's config and maps and writes one
// Mailward config plus its mailboxes and aliases, with a report of what became what, what could
// not be translated (file:line and what to do) and what was unsafe (never copied).
import type { Command } from 'commander';
import { importPostfix } from '../../import/postfix/write.ts';
import { CliError, EXIT } from './index.ts';

export function registerImport(program: Command): void {
  const imp = program.command('import').description('bring another mail server\'s configuration over');
  imp
    .command('postfix')
    .description('translate main.cf, master.cf and their maps into a Mailward config, mailboxes and aliases')
    .option('--config-dir <dir>', 'the Postfix config folder', '/etc/postfix')
    .option('--root <dir>', 'the old server\'s filesystem root, for a copy of its disk (absolute paths in its config are read under it)', '/')
    .option('--out <file>', 'the Mailward config to write', 'mailward.yaml')
    .option('--dry-run', 'print the report (and the config) without writing anything')
    .option('--force', 'replace --out if it exists')
    .option('--no-postconf', 'use the built-in defaults table instead of postconf -d')
    .action(async (opts: { configDir: string; root: string; out: string; dryRun?: boolean; force?: boolean; postconf: boolean }) => {
      let r;
      try {
        r = await importPostfix({ configDir: opts.configDir, root: opts.root, out: opts.out, dryRun: opts.dryRun === true, force: opts.force === true, postconf: opts.postconf ? 'postconf' : false });
      } catch (err) {
        throw new CliError((err as Error).message, EXIT.usage);
      }
      process.stdout.write(r.text);
      if (opts.dryRun) process.stdout.write(`\n--- ${opts.out} (not written) ---\n${r.yaml}`);
      process.exitCode = r.code;
    });
}
