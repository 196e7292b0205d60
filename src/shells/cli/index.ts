// The `mailward` command line: a thin front door over app/. Every command takes --config; errors
// an operator sees name the setting or argument, the value and the fix, and set a non-zero exit.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { loadConfig, type Config } from '../../config/load.ts';
import { ConfigError } from '../../config/errors.ts';
import { registerServe } from './serve.ts';
import { registerAccounts } from './accounts.ts';
import { registerQueue } from './queue.ts';
import { registerConfig } from './config.ts';
import { registerStore } from './store.ts';
import { registerRelayTest } from './relay-test.ts';
import { registerDoctor } from './doctor.ts';
import { registerGuard } from './guard.ts';
import { registerOutbound } from './outbound.ts';
import { registerPolicyd } from './policyd.ts';
import { registerDkim } from './dkim.ts';
import { registerLearn, registerSpam } from './spam.ts';
import { registerQuarantine } from './quarantine.ts';
import { registerSystemdUnit } from './systemd-unit.ts';
import { SAFE_UMASK } from '../../app/privileges.ts';
import { registerSrs } from './srs.ts';
import { registerBackup } from './backup.ts';
import { registerDns } from './dns.ts';
import { registerImport } from './import.ts';
import { registerDmarc } from './dmarc.ts';
import { registerTlsRpt } from './tlsrpt.ts';

/** Exit codes: 0 ok, 1 operation failed, 2 bad config or usage. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

export interface GlobalOptions {
  config?: string;
}

/** Loads the config named by --config (or ./mailward.yaml, or the built-in default). */
export function configFrom(cmd: Command): Config {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  return loadConfig(opts.config);
}

/**
 * The version in package.json: two folders up from src/shells/cli/ in a checkout and from
 * dist/shells/cli/ in an installed package alike (the package ships package.json at its root).
 */
function packageVersion(): string {
  const file = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** Builds the command tree; `output` redirects commander's own output (help, usage errors). */
export function buildProgram(output?: { writeOut(s: string): void; writeErr(s: string): void }): Command {
  const program = new Command('mailward');
  // Set before the subcommands exist: they copy these settings when they are created.
  if (output) program.configureOutput(output);
  program
    .description('Mailward: a secure-by-default mail server (SMTP MTA) in one process with one config file.')
    .option('-c, --config <file>', 'config file (default: ./mailward.yaml if present, else the built-in default)')
    .version(packageVersion(), '-V, --version', 'print the installed version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerServe(program);
  registerConfig(program);
  registerAccounts(program);
  registerQueue(program);
  registerStore(program);
  registerRelayTest(program);
  registerDoctor(program);
  registerGuard(program);
  registerOutbound(program);
  registerPolicyd(program);
  registerDkim(program);
  registerLearn(program);
  registerSpam(program);
  registerQuarantine(program);
  registerSystemdUnit(program);
  registerSrs(program);
  registerSendmail(program);
  registerBackup(program);
  registerDns(program);
  registerImport(program);
  registerDmarc(program);
  registerTlsRpt(program);
  program.commands.forEach(function inherit(c: Command): void {
    c.exitOverride();
    c.commands.forEach(inherit);
  });
  return program;
}

/**
 * Listed for --help; `mailward sendmail ...` itself is taken by main.ts before the parser, so
 * that sendmail's own options (-t, -f, -bs) never meet commander's. Reached here only after a
 * global option (`mailward -c file sendmail ...`): the rest of the line goes to it unparsed.
 */
function registerSendmail(program: Command): void {
  program
    .command('sendmail')
    .description("sendmail(8) for local programs (cron, PHP mail(), mail(1)): submits over the server's local socket as the calling Unix user; also installed as mailward-sendmail (docs/guide/sendmail.md)")
    .argument('[args...]', 'sendmail options and recipients: -t -i -f sender -F name -bs -bp')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (_args: string[], _opts: unknown, cmd: Command) => {
      const { runSendmail } = await import('./sendmail.ts');
      const config = cmd.optsWithGlobals<GlobalOptions>().config;
      process.exitCode = await runSendmail([...(config ? ['-C', config] : []), ...cmd.args], 'sendmail', runCli);
    });
}

export async function runCli(argv: readonly string[]): Promise<number> {
  // Every command, not only serve: `user add` creates the directory's SQLite file, `dkim keygen`
  // keys; nothing Mailward creates is world-readable (docs/decisions/0020-unprivileged-systemd.md).
  process.umask(SAFE_UMASK);
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof CliError) {
      process.stderr.write(`mailward: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`mailward: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failed;
  }
}
