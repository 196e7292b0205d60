#!/usr/bin/env node
// Entry point of the `mailward` command: hands the arguments to the CLI shell.
import { runCli } from './shells/cli/index.ts';

process.exitCode = await runCli(process.argv);
