// The report mails the server writes itself — DMARC aggregate (RFC 7489 §7.2.1.1) and TLS-RPT
// (RFC 8460 §5.3: "The report MUST be DKIM-signed", §3 the signing domain) — leave through the
// queue DKIM-signed with the sending domain's key: a real server, a loopback DNS server and a
// loopback sink playing the report addresses' MX; mailauth verifies the bytes the sink received
// against the DKIM record the zone publishes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dkimVerify } from 'mailauth';
import { buildConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { dkimRecordValue, generateDkimKey } from '../../src/delivery/dkim-sign.ts';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { startSink } from '../delivery/sink.ts';

async function send(port: number, from: string, to: string): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO client.sender.example').expect('250');
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  await c.say(`RCPT TO:<${to}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send(`From: <${from}>\r\nTo: <${to}>\r\nSubject: hi\r\nMessage-ID: <${Math.random()}@x>\r\n\r\nhello\r\n.\r\n`);
  const done = await c.read();
  await c.say('QUIT').expect('221');
  return done.raw;
}

test('DMARC and TLS-RPT report mails are DKIM-signed with the domain key (mailauth verifies them)', async (t) => {
  const key = generateDkimKey('ed25519');
  const record = dkimRecordValue(key);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'mailward-report-dkim-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  mkdirSync(path.join(dataDir, 'dkim'), { recursive: true });
  writeFileSync(path.join(dataDir, 'dkim', 'example.org.s1.key'), key, { mode: 0o600 });

  const sink = await startSink(t);
  const dns = await startDns(t, {
    'sender.example': { TXT: ['v=spf1 ip4:127.0.0.1 -all'], names: { _dmarc: { TXT: ['v=DMARC1; p=none; rua=mailto:dmarc@remote.example'] } } },
    // The report domain: its MX is the sink; it takes sender.example's DMARC reports (RFC 7489
    // §7.1) and announces MTA-STS without a policy host, so each delivery to it is a failed policy
    // fetch counted for TLS-RPT (RFC 8460 §4.3.2.2) — mail still goes — reported to its mailto rua.
    'remote.example': {
      MX: ['10 mx.remote.example.'],
      names: { mx: { A: ['127.0.0.1'] }, 'sender.example._report._dmarc': { TXT: ['v=DMARC1'] }, '_mta-sts': { TXT: ['v=STSv1; id=a1'] }, '_smtp._tls': { TXT: ['v=TLSRPTv1; rua=mailto:tlsrpt@remote.example'] } },
    },
    'example.org': { names: { 's1._domainkey': { TXT: [record] } } },
  });
  const srv = await startServer(t, {
    dataDir,
    users: [['bob@example.org', 'bob password 1']],
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      pipeline: { rcpt: ['recipient', 'spf'], data: ['dkim-dmarc'] },
      dmarcReports: { send: { enabled: true, from: 'dmarc-noreply@example.org', organization: 'Example Org' } },
      queue: { minBackoff: '100ms', maxBackoff: '500ms' },
      delivery: { dkim: { enabled: true }, mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' }, tlsRpt: { from: 'tlsrpt-noreply@example.org' } },
    },
  });

  // Inbound mail from sender.example is counted for its DMARC report; the report goes out.
  assert.match(await send(srv.port('mx'), 'alice@sender.example', 'bob@example.org'), /^250 /);
  await srv.waitForMail('bob@example.org', 1);
  const dmarcRuns = await srv.server.sendDmarcReports(Date.now() + 2 * 86_400_000);
  assert.deepEqual(dmarcRuns.map((r) => `${r.domain} ${r.rua} ${r.ok}`), ['sender.example mailto:dmarc@remote.example true']);
  await sink.waitForMessages(1, 60_000);
  // Its delivery counted a TLS-RPT outcome for remote.example; that day's report goes out too.
  await srv.waitForLog((l) => l.event === 'tls-policy' && l.domain === 'remote.example');
  const tlsRuns = await srv.server.sendTlsReports(new Date().toISOString().slice(0, 10));
  assert.deepEqual(tlsRuns.map((x) => `${x.domain} ${x.rua} ${x.ok}`), ['remote.example mailto:tlsrpt@remote.example true']);
  const [dmarcMail, tlsMail] = await sink.waitForMessages(2, 60_000);
  assert.deepEqual(dmarcMail!.rcpts, ['dmarc@remote.example']);
  assert.deepEqual(tlsMail!.rcpts, ['tlsrpt@remote.example']);

  const resolver = async (name: string, rrtype: string): Promise<string[][]> => {
    if (name === 's1._domainkey.example.org' && rrtype === 'TXT') return [[record]];
    throw Object.assign(new Error('no such record'), { code: 'ENOTFOUND' });
  };
  for (const [what, mail] of [['DMARC', dmarcMail!], ['TLS-RPT', tlsMail!]] as const) {
    const res = await dkimVerify(mail.body, { resolver });
    assert.deepEqual(
      res.results.map((r) => [r.signingDomain, r.selector, r.status.result]),
      [['example.org', 's1', 'pass']],
      `${what} report: ${mail.body.toString('utf8').slice(0, 400)}`,
    );
  }
});

test('a listener may not take the name of the server-written mail the router signs', () => {
  for (const name of ['bounce', 'tls-report', 'dmarc-report', 'outbound-guard']) {
    assert.throws(
      () => buildConfig({ listeners: { [name]: { kind: 'mx', port: 0 } } }, 'test.yaml', '/srv'),
      (e: unknown) => e instanceof ConfigError && e.message.includes(`listeners.${name}`) && /reserved for mail the server writes itself/.test(e.message),
      name,
    );
  }
});
