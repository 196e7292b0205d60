// `mailward srs keys` lists the SRS keys (fingerprints and dates, never the secrets); `mailward
// srs rotate` puts a new key first. Old keys keep verifying the return addresses they made until
// forwarding.srs.maxAge days after they were replaced; a running server sees the change at once.
import { mkdirSync } from 'node:fs';
import type { Command } from 'commander';
import { keyFingerprint, SrsKeyFile, type SrsKey } from '../../app/srs-keys.ts';
import { configFrom } from './index.ts';

const line = (k: SrsKey, i: number): string => `${keyFingerprint(k.secret)}  ${new Date(k.created).toISOString()}  ${i === 0 ? 'signs and verifies' : 'verifies only'}\n`;

export function registerSrs(program: Command): void {
  const srs = program.command('srs').description('Sender Rewriting Scheme keys for forwarded mail');
  const open = (cmd: Command): SrsKeyFile => {
    const config = configFrom(cmd);
    mkdirSync(config.dataDir, { recursive: true });
    return new SrsKeyFile(config.paths.srsKeys);
  };
  srs
    .command('keys')
    .description('list the keys, newest (the signing key) first; makes the first key when there is none')
    .action((_opts: unknown, cmd: Command) => {
      const file = open(cmd);
      process.stdout.write(`${file.path}:\n`);
      file.keys().forEach((k, i) => process.stdout.write(line(k, i)));
    });
  srs
    .command('rotate')
    .description('make a new signing key; older keys still verify until forwarding.srs.maxAge days after they were replaced')
    .action((_opts: unknown, cmd: Command) => {
      const config = configFrom(cmd);
      const file = open(cmd);
      const r = file.rotate(config.forwarding.srs.maxAge);
      process.stdout.write(`new signing key ${keyFingerprint(r.added.secret)} in ${file.path}\n`);
      for (const k of r.dropped) process.stdout.write(`dropped ${keyFingerprint(k.secret)} (replaced more than ${config.forwarding.srs.maxAge} days ago)\n`);
      r.keys.forEach((k, i) => process.stdout.write(line(k, i)));
    });
}
