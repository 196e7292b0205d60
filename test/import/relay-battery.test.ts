// Every fixture Postfix server, imported and started as written, attacked with the whole relay
// battery (the one `mailward relay-test` runs) on every listener, from 127.0.0.1 and from ::1 —
// the addresses a tunnel, port forward or proxy on the host connects from — and with forged
// PROXY headers claiming loopback and each trusted network. No attempt may be accepted without
// a login, whatever the Postfix config said (several of them were open relays).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { RelayTestError, runRelayTest, type RelayTestOptions, type RelayTestReport } from '../../src/app/relay-test.ts';
import { startDns } from '../harness/dns.ts';
import { FIXTURES, forTest, importFixture, obj, start } from './helpers.ts';

interface Listener {
  kind: string;
  host: string;
  requireTls?: boolean;
}

const relayed = (r: RelayTestReport): string[] => r.attempts.filter((a) => a.verdict === 'relayed').map((a) => `${a.name} (RCPT TO:${a.rcptTo} -> ${a.rcpt ? `${a.rcpt.code} ${a.rcpt.lines.join(' ')}` : '?'})`);

/** A catch-all alias of the domain (@domain) accepts any local part: a 250 there is local mail. */
const catchAll = (aliases: ReadonlyMap<string, readonly string[]>, domain: string): boolean => aliases.has(`@${domain}`);

/** The first address of a trusted range, as a PROXY header source. */
function firstAddress(range: string): string {
  const [addr] = range.split('/');
  return addr!.includes(':') ? addr!.replace(/::$/, '::1') : addr!.replace(/\.0$/, '.1');
}

for (const name of readdirSync(FIXTURES).sort()) {
  test(`relay battery against the imported ${name}: nothing relays without a login`, async (t) => {
    const imp = await importFixture(t, name);
    const dns = await startDns(t, {});
    const written = obj(imp.written.listeners) as Record<string, Listener>;
    const trusted = (obj(imp.written.relay).trustedNetworks as string[] | undefined) ?? [];
    const config = forTest(imp, (c) => {
      c.dns = { servers: [dns.address] };
      // Every listener again on ::1: clients of an IPv6 tunnel arrive from there.
      const ls = obj(c.listeners);
      for (const [n, l] of Object.entries(ls)) ls[`${n}-v6`] = { ...obj(l), host: '::1', port: 0 };
    });
    const srv = await start(t, imp, config);
    const domains = (imp.written.domains as string[] | undefined) ?? [];
    assert.ok(domains.length > 0, `${name}: the import found the mail domains`);
    const foreign = ['example.net', 'victim.example'].find((d) => !domains.includes(d))!;
    let runs = 0;
    for (const [listener, l] of Object.entries(written)) {
      const tls: RelayTestOptions['tls'] = l.kind === 'submissions' ? 'implicit' : l.requireTls ? 'starttls' : 'none';
      for (const [suffix, host] of [['', '127.0.0.1'], ['-v6', '::1']] as const) {
        const port = srv.port(`${listener}${suffix}`);
        const proxies: Array<RelayTestOptions['proxy']> = [undefined, { version: 1, source: '127.0.0.1' }, { version: 2, source: '::1' }, ...trusted.map((n) => ({ version: 2 as const, source: firstAddress(n) }))];
        for (const proxy of proxies) {
          for (const domain of domains) {
            const what = `${name}: listener ${listener} (${l.kind}) from ${host}${proxy ? ` with a PROXY v${proxy.version} header claiming ${proxy.source}` : ''}, local domain ${domain}`;
            let report: RelayTestReport;
            try {
              report = await runRelayTest({ host, port, tls, localDomain: domain, foreignDomain: foreign, verifyTls: false, timeoutMs: 60_000, ...(proxy ? { proxy } : {}) });
            } catch (err) {
              // A listener that takes no PROXY header may close before TLS or the greeting: refused.
              if (proxy && err instanceof RelayTestError) continue;
              throw err;
            }
            runs++;
            const open = relayed(report).filter((a) => !(catchAll(imp.result.plan.aliases, domain) && report.attempts.find((x) => a.startsWith(`${x.name} `))?.viaLocalDomain));
            assert.deepEqual(open, [], `${what}: accepted without a login:\n${open.join('\n')}`);
            if (!proxy) assert.ok(report.counts.refused > 0, `${what}: the battery ran (${report.result})`);
          }
        }
      }
    }
    assert.ok(runs > 0);
  });
}
