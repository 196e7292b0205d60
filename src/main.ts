#!/usr/bin/env node
// Entry point of the `mailward` command: hands the arguments to the CLI shell. Called as
// sendmail, mailq or newaliases (a link to this file), or as `mailward sendmail ...`, it is
// sendmail(8) for local programs (shells/cli/sendmail.ts).
import path from 'node:path';
import { runCli } from './shells/cli/index.ts';
import { runSendmail } from './shells/cli/sendmail.ts';

const SENDMAIL_NAMES = new Map([
  ['sendmail', 'sendmail'],
  ['mailward-sendmail', 'sendmail'],
  ['mailq', 'mailq'],
  ['newaliases', 'newaliases'],
]);
const invokedAs = SENDMAIL_NAMES.get(path.basename(process.argv[1] ?? '').replace(/\.[cm]?[jt]s$/, ''));
if (invokedAs) process.exitCode = await runSendmail(process.argv.slice(2), invokedAs, runCli);
else if (process.argv[2] === 'sendmail' && !['-h', '--help'].includes(process.argv[3] ?? '')) process.exitCode = await runSendmail(process.argv.slice(3), 'sendmail', runCli);
else process.exitCode = await runCli(process.argv);
