// `mailward backup <folder>`: copies dataDir while the server runs, SQLite files through SQLite's
// online backup API (app/backup.ts; docs/guide/backup.md has the restore and upgrade steps).
import type { Command } from 'commander';
import { backupDataDir } from '../../app/backup.ts';
import { CliError, configFrom } from './index.ts';

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('copy dataDir (users, aliases, the queue, keys, state) into a new folder, also while the server runs; restore: docs/guide/backup.md')
    .argument('<folder>', 'a new or empty folder outside dataDir')
    .action(async (folder: string, _opts: unknown, cmd: Command) => {
      const config = configFrom(cmd);
      const r = await backupDataDir(config, folder).catch((err: unknown) => {
        throw new CliError(`backup ${JSON.stringify(folder)}: ${err instanceof Error ? err.message : String(err)}`);
      });
      process.stdout.write(`backed up ${config.dataDir} to ${folder}: ${r.databases.length} SQLite files (${r.databases.join(', ')}), ${r.files} other files, ${r.bytes} bytes\n`);
    });
}
