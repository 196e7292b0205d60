// `mailward dns records [domain]`: every DNS record the domain should publish for this server,
// ready to paste into a zone file (see docs/guide/dns.md); `mailward doctor --dns` checks them.
import { isIP } from 'node:net';
import type { Command } from 'commander';
import { expectedRecords, formatRecords } from '../../doctor/dns-records.ts';
import { CliError, configFrom, EXIT } from './index.ts';

export function registerDns(program: Command): void {
  const dns = program.command('dns').description('DNS records of your mail domains');
  dns
    .command('records [domain]')
    .description('print the records to publish for DOMAIN (default: every configured domain) in zone-file form')
    .option('--ip <address...>', "this server's public addresses, when it cannot see them itself (behind NAT)")
    .action((domainArg: string | undefined, opts: { ip?: string[] }, cmd: Command) => {
      const config = configFrom(cmd);
      for (const ip of opts.ip ?? []) if (isIP(ip) === 0) throw new CliError(`--ip ${JSON.stringify(ip)} is not an IP address; give the server's public address, e.g. 203.0.113.25`, EXIT.usage);
      const domains = domainArg !== undefined ? [domainArg.toLowerCase().replace(/\.$/, '')] : config.domains.filter((d) => d !== 'localhost');
      if (domains.length === 0) throw new CliError('no domain given and none configured; name one, e.g. "mailward dns records example.org", or set domains in the config', EXIT.usage);
      const unknown = domains.filter((d) => !config.domains.includes(d));
      if (unknown.length > 0) throw new CliError(`${unknown.join(', ')} is not one of the configured domains (${config.domains.join(', ')}); add it to domains, or name one of them`, EXIT.usage);
      const text = domains.map((d) => `; ---- ${d} ----\n${formatRecords(expectedRecords(config, d, opts.ip ? { addresses: opts.ip } : {}))}`).join('\n');
      process.stdout.write(text);
    });
}
