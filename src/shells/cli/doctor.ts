// `mailward doctor`: audits the config and this machine and prints each finding with its
// severity, the setting or fact, and the fix. Exit 1 on any error-level finding (for CI and
// cron), 2 when the config does not load, else 0.
import type { Command } from 'commander';
import { runDoctorCli } from '../../doctor/doctor.ts';
import { openDirectory } from '../../app/accounts.ts';

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('audit the config and this machine: open-relay shapes, TLS, outbound guard, DKIM, DNS blocklists, disk, clock')
    .option('--json', 'print the findings as JSON')
    .option('--dns', 'also ask the DNS for every record "mailward dns records" prints, and name each missing or wrong one')
    .action(async (opts: { json?: boolean; dns?: boolean }, cmd: Command) => {
      const { config } = cmd.optsWithGlobals<{ config?: string }>();
      const run = await runDoctorCli(config, opts.json === true, { directory: openDirectory, liveDns: opts.dns === true });
      process.stdout.write(run.output);
      process.exitCode = run.code;
    });
}
