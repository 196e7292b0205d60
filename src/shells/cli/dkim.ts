// `mailward dkim keygen DOMAIN` makes a signing key in dataDir/dkim/<domain>.<selector>.key and
// prints the DNS TXT record to publish; `mailward dkim record DOMAIN` prints it again for a key
// that exists. The server reads the keys at start.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { dkimKeyFiles, dkimRecordValue, dkimZoneRecord, generateDkimKey, isDkimDomain, keyFileName, SELECTOR_RE } from '../../app/delivery.ts';
import { CliError, configFrom, EXIT } from './index.ts';

/** A selector that sorts by date, so a new key gets a new name: "mw202507". */
function defaultSelector(now = new Date()): string {
  return `mw${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
}

function checkDomain(domain: string): string {
  const d = domain.toLowerCase().replace(/\.$/, '');
  if (!isDkimDomain(d)) throw new CliError(`${JSON.stringify(domain)} is not a domain name; give the domain of your From addresses, e.g. example.org`, EXIT.usage);
  return d;
}

function printRecord(domain: string, selector: string, pem: string): void {
  process.stdout.write(`publish this TXT record in the DNS of ${domain}:\n\n${dkimZoneRecord(domain, selector, dkimRecordValue(pem))}\n\n`);
}

export function registerDkim(program: Command): void {
  const dkim = program.command('dkim').description('DKIM signing keys for outgoing mail');
  dkim
    .command('keygen <domain>')
    .description('create a signing key for DOMAIN and print the DNS TXT record to publish')
    .option('--selector <selector>', 'the key\'s selector (default: mw<year><month>)')
    .option('--type <type>', 'rsa or ed25519 (few receivers verify ed25519 alone yet)', 'rsa')
    .option('--bits <bits>', 'RSA key size', '2048')
    .option('--force', 'replace an existing key file of the same selector')
    .action((domainArg: string, opts: { selector?: string; type: string; bits: string; force?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      const domain = checkDomain(domainArg);
      const selector = opts.selector ?? defaultSelector();
      if (!SELECTOR_RE.test(selector)) throw new CliError(`--selector ${JSON.stringify(selector)}: use letters, digits and "-" (one DNS label), e.g. mail2025`, EXIT.usage);
      if (opts.type !== 'rsa' && opts.type !== 'ed25519') throw new CliError(`--type ${JSON.stringify(opts.type)}: use rsa or ed25519`, EXIT.usage);
      const bits = Number.parseInt(opts.bits, 10);
      let pem: string;
      try {
        pem = generateDkimKey(opts.type, bits);
      } catch (err) {
        throw new CliError((err as Error).message, EXIT.usage);
      }
      const dir = path.join(config.dataDir, 'dkim');
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = path.join(dir, keyFileName(domain, selector));
      try {
        // "wx": never overwrite a key that may be published already, unless asked to.
        writeFileSync(file, pem, { mode: 0o600, flag: opts.force ? 'w' : 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new CliError(`${file} exists; choose another --selector, or --force to replace it (its TXT record must then be replaced too)`);
        throw err;
      }
      process.stdout.write(`wrote ${file} (${opts.type === 'rsa' ? `RSA ${bits}` : 'Ed25519'}, selector ${selector})\n`);
      printRecord(domain, selector, pem);
      process.stdout.write(`mail with a From address at ${domain} (or a subdomain) is signed once the server restarts.\n`);
    });
  dkim
    .command('record <domain>')
    .description('print the DNS TXT record of an existing key of DOMAIN')
    .option('--selector <selector>', 'which key (default: the newest)')
    .action((domainArg: string, opts: { selector?: string }, cmd: Command) => {
      const config = configFrom(cmd);
      const domain = checkDomain(domainArg);
      const dir = path.join(config.dataDir, 'dkim');
      const found = dkimKeyFiles(dir, domain).find((k) => opts.selector === undefined || k.selector === opts.selector);
      if (!found) throw new CliError(`no DKIM key for ${domain}${opts.selector ? ` with selector ${opts.selector}` : ''} in ${dir}; create one with "mailward dkim keygen ${domain}"`);
      const { selector, file } = found;
      printRecord(domain, selector, readFileSync(file, 'utf8'));
    });
}
