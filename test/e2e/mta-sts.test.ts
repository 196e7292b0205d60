// MTA-STS and TLS-RPT end to end: a real server delivers to "remote" domains found through a
// loopback DNS server, whose MTA-STS policies come from a loopback HTTPS server with a test CA,
// to a loopback SMTP sink. Enforced mail to an MX with the wrong certificate is deferred and then
// bounced with a DSN naming the policy; the daily TLS-RPT job posts one report to an HTTPS
// collector and mails another through the queue; the server's own policy host serves its policy.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { simpleParser } from 'mailparser';
import { policyId, policyText } from '../../src/core/mta-sts.ts';
import { MtaStsPolicies } from '../../src/delivery/tls-policy/mta-sts.ts';
import { silentLogger } from '../../src/observe/log.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { dial } from '../harness/dial.ts';
import { startDns, type TestDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { startCa, type TestCa } from '../harness/test-ca.ts';
import { startSink, type Sink } from '../delivery/sink.ts';
import { authPlain } from '../harness/auth.ts';

interface TlsReport {
  'date-range': unknown;
  policies: Array<{ policy: unknown; summary: Record<string, number>; 'failure-details'?: Array<Record<string, string | number>> }>;
}

interface Collector {
  readonly port: number;
  readonly posts: Array<{ type: string; body: Buffer }>;
}

/** An HTTPS server taking TLS-RPT POSTs (RFC 8460 §5.4), and policies at mta-sts.<domain>. */
async function startHttps(t: TestContext, ca: TestCa, names: string[], policies: Map<string, string>): Promise<Collector> {
  const { certPem, keyPem } = ca.issue(names);
  const posts: Collector['posts'] = [];
  const srv = https.createServer({ cert: certPem, key: keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST') {
        posts.push({ type: String(req.headers['content-type']), body: Buffer.concat(chunks) });
        res.writeHead(201).end();
        return;
      }
      const host = String(req.headers.host ?? '');
      const text = policies.get(host.replace(/^mta-sts\./, ''));
      if (text === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'text/plain' }).end(text);
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  return { port: (srv.address() as AddressInfo).port, posts };
}

interface Rig {
  srv: TestServer;
  sink: Sink;
  dns: TestDns;
  ca: TestCa;
  collector: Collector;
  dir: string;
}

async function rig(t: TestContext, queue: Record<string, unknown> = {}): Promise<Rig> {
  const ca = startCa(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-sts-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'ca.pem'), ca.caPem);
  const own = ca.issue(['mx.example.org', 'mta-sts.example.org']);
  writeFileSync(path.join(dir, 'cert.pem'), own.certPem);
  writeFileSync(path.join(dir, 'key.pem'), own.keyPem, { mode: 0o600 });
  // One sink plays every MX: its certificate is valid for mx.good.example only.
  const mxCert = ca.issue(['mx.good.example']);
  const sink = await startSink(t, { tls: tls.createSecureContext({ cert: mxCert.certPem, key: mxCert.keyPem }) });
  const policies = new Map([
    ['good.example', policyText({ mode: 'enforce', mx: ['mx.good.example'], maxAge: 86400 })],
    ['bad.example', policyText({ mode: 'enforce', mx: ['mx.bad.example'], maxAge: 86400 })],
  ]);
  const collector = await startHttps(t, ca, ['127.0.0.1', 'mta-sts.good.example', 'mta-sts.bad.example'], policies);
  const zone = (d: string, rua: string): object => ({ MX: [`10 mx.${d}.`], names: { mx: { A: ['127.0.0.1'] }, '_mta-sts': { TXT: ['v=STSv1; id=a1'] }, '_smtp._tls': { TXT: [`v=TLSRPTv1; rua=${rua}`] } } });
  const dns = await startDns(t, {
    'good.example': zone('good.example', `https://127.0.0.1:${collector.port}/tlsrpt`),
    'bad.example': zone('bad.example', 'mailto:tlsrpt@reports.example'),
    'reports.example': { MX: ['10 mx.good.example.'] },
    'plain.example': { MX: ['10 mx.plain.example.'], names: { mx: { A: ['127.0.0.1'] } } },
    'example.org': {},
  });
  const srv = await startServer(t, {
    users: [['alice@example.org', 'alice password 1']],
    config: {
      tls: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') },
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      queue: { minBackoff: '100ms', maxBackoff: '500ms', ...queue },
      delivery: {
        mx: { port: sink.port },
        timeouts: { connect: '2s', greeting: '2s', idle: '5s' },
        mtaSts: { caFile: path.join(dir, 'ca.pem'), addresses: { 'mta-sts.good.example': `127.0.0.1:${collector.port}`, 'mta-sts.bad.example': `127.0.0.1:${collector.port}` } },
      },
      mtaSts: { serve: { enabled: true, host: '127.0.0.1', port: 0, mode: 'enforce' } },
    },
  });
  return { srv, sink, dns, ca, collector, dir };
}

/** Submits as alice (STARTTLS, AUTH), MAIL FROM with `params` (e.g. " REQUIRETLS"); returns the queue id. */
async function send(srv: TestServer, from: string, to: string, params = ''): Promise<string> {
  const c = await dial(srv.port('submission'));
  await c.expect('220');
  await c.say('EHLO client.example.org').expect('250');
  await c.say('STARTTLS').expect('220');
  await c.startTls();
  await c.say('EHLO client.example.org').expect('250');
  await c.say(authPlain('alice@example.org', 'alice password 1')).expect('235');
  await c.say(`MAIL FROM:<${from}>${params}`).expect('250');
  await c.say(`RCPT TO:<${to}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send(`From: <${from}>\r\nTo: <${to}>\r\nSubject: hi\r\n\r\nhello, body text\r\n.\r\n`);
  const done = await c.expect('250 2.0.0 Ok: queued as ');
  await c.say('QUIT').expect('221');
  return done.text.split(' ').pop()!;
}

test('enforced MTA-STS: a wrong MX certificate defers, then bounces with a DSN naming the policy', async (t) => {
  const r = await rig(t, { maxAge: '1s' });
  await send(r.srv, 'alice@example.org', 'bob@bad.example');
  await r.srv.waitForLog((l) => l.event === 'tls-policy' && l.domain === 'bad.example' && l.result === 'certificate-host-mismatch');
  const [dsn] = await r.srv.waitForMail('alice@example.org', 1);
  assert.match(dsn!, /Status: 5\.\d\.\d+/);
  assert.match(dsn!, /MTA-STS policy of bad\.example requires TLS with a valid certificate for mx\.bad\.example: certificate-host-mismatch/);
  assert.equal(r.sink.messages.length, 0, 'nothing reached the MX with the wrong certificate');
});

// RFC 8689 §4.2.1: a REQUIRETLS message goes only over MTA-STS- or DANE-verified TLS to a host
// that offers REQUIRETLS. The sink (valid certificate for mx.good.example, no REQUIRETLS) gets
// nothing: to good.example (enforced policy) the host lacks REQUIRETLS, 4.7.30; to plain.example
// (no policy, no DANE) nothing verifies the host, 4.7.10. At maxAge each bounces to alice with
// the 5.7.x status, the original headers only, and REQUIRETLS kept on the notice (§5).
test('REQUIRETLS: deferred without verified TLS or a REQUIRETLS host, then bounced to the sender with 5.7.30 / 5.7.10', async (t) => {
  const r = await rig(t, { maxAge: '1s' });
  const ids = [await send(r.srv, 'alice@example.org', 'bob@good.example', ' REQUIRETLS'), await send(r.srv, 'alice@example.org', 'carol@plain.example', ' REQUIRETLS')];
  await r.srv.waitForLog((l) => l.event === 'tls-policy' && l.policy === 'requiretls' && l.domain === 'good.example' && l.result === 'not-offered');
  await r.srv.waitForLog((l) => l.event === 'tls-policy' && l.policy === 'requiretls' && l.domain === 'plain.example' && l.result === 'no-verified-tls');
  const dsns = await r.srv.waitForMail('alice@example.org', 2);
  const byRcpt = (rcpt: string): string => dsns.find((d) => d.includes(`Final-Recipient: rfc822; ${rcpt}`)) ?? assert.fail(`no DSN for ${rcpt} in:\n${dsns.join('\n----\n')}`);
  const good = byRcpt('bob@good.example');
  assert.match(good, /Status: 5\.7\.30/);
  assert.match(good, /Diagnostic-Code: smtp; 450 4\.7\.30 REQUIRETLS message not sent to mx\.good\.example\S*: it does not offer REQUIRETLS/);
  const plain = byRcpt('carol@plain.example');
  assert.match(plain, /Status: 5\.7\.10/);
  assert.match(plain, /REQUIRETLS: plain\.example has no MTA-STS policy or DANE TLSA records to verify MX host mx\.plain\.example/);
  for (const d of dsns) {
    assert.match(d, /Subject: hi/, 'the original header is quoted');
    assert.doesNotMatch(d, /hello, body text/, 'the body is not (RET=HDRS, RFC 8689 §5)');
  }
  for (const original of ids) await r.srv.waitForLog((l) => l.event === 'bounce-queued' && l.original === original && l.requireTls === true);
  assert.equal(r.sink.messages.length, 0, 'nothing of a REQUIRETLS message reached a host without REQUIRETLS');
});

test('TLS-RPT: the daily job posts a gzip JSON report to an https rua and mails one to a mailto rua through the queue', async (t) => {
  const r = await rig(t);
  await send(r.srv, 'alice@example.org', 'bob@good.example');
  await r.sink.waitForMessages(1, 60_000);
  assert.equal(r.sink.messages[0]!.secure, true);
  await send(r.srv, 'alice@example.org', 'carol@bad.example');
  await r.srv.waitForLog((l) => l.event === 'tls-policy' && l.domain === 'bad.example');

  const day = new Date().toISOString().slice(0, 10);
  const runs = await r.srv.server.sendTlsReports(day);
  assert.deepEqual(
    runs.map((x) => `${x.domain} ${x.rua} ${x.ok}`),
    ['bad.example mailto:tlsrpt@reports.example true', `good.example https://127.0.0.1:${r.collector.port}/tlsrpt true`],
  );
  assert.deepEqual(await r.srv.server.sendTlsReports(day), [], 'a day is reported once');

  assert.equal(r.collector.posts.length, 1);
  assert.equal(r.collector.posts[0]!.type, 'application/tlsrpt+gzip');
  const good = JSON.parse(gunzipSync(r.collector.posts[0]!.body).toString('utf8')) as TlsReport;
  assert.deepEqual(good['date-range'], { 'start-datetime': `${day}T00:00:00Z`, 'end-datetime': `${day}T23:59:59Z` });
  assert.deepEqual(good.policies[0]!.policy, { 'policy-type': 'sts', 'policy-string': ['version: STSv1', 'mode: enforce', 'mx: mx.good.example', 'max_age: 86400'], 'policy-domain': 'good.example', 'mx-host': ['mx.good.example'] });
  assert.deepEqual(good.policies[0]!.summary, { 'total-successful-session-count': 1, 'total-failure-session-count': 0 });

  // The mailto report leaves through the queue to reports.example's MX (no policy there).
  const [mail] = (await r.sink.waitForMessages(2, 60_000)).slice(1);
  assert.deepEqual(mail!.rcpts, ['tlsrpt@reports.example']);
  const parsed = await simpleParser(mail!.body);
  assert.equal(parsed.headers.get('tls-report-domain'), 'bad.example');
  assert.match(String(parsed.subject), /^Report Domain: bad\.example Submitter: mx\.example\.org Report-ID: </);
  assert.match(String((parsed.headers.get('content-type') as { value: string; params: Record<string, string> }).params['report-type']), /tlsrpt/);
  const att = parsed.attachments[0]!;
  assert.equal(att.contentType, 'application/tlsrpt+gzip');
  assert.match(att.filename ?? '', /^mx\.example\.org!bad\.example!\d+!\d+!.+\.json\.gz$/);
  const bad = JSON.parse(gunzipSync(att.content).toString('utf8')) as TlsReport;
  const details = bad.policies[0]!['failure-details'] ?? [];
  assert.deepEqual(bad.policies[0]!.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': details.reduce((n, d) => n + Number(d['failed-session-count']), 0) });
  assert.equal(details[0]?.['result-type'], 'certificate-host-mismatch');
  assert.equal(details[0]?.['receiving-mx-hostname'], 'mx.bad.example');
});

test('the server serves its own MTA-STS policy at mta-sts.<domain>, with the id dns records prints', async (t) => {
  const r = await rig(t);
  const port = r.srv.server.mtaStsPort()!;
  const want = policyText({ mode: 'enforce', mx: ['mx.example.org'], maxAge: 604800 });
  // Fetched by the same code that fetches other domains' policies, certificate verified.
  r.dns.set('_mta-sts.example.org', 'TXT', [`v=STSv1; id=${policyId({ mode: 'enforce', mx: ['mx.example.org'], maxAge: 604800 })}`]);
  const store = new SqliteStore({ path: path.join(r.dir, 'fetch.sqlite') }, silentLogger());
  t.after(() => store.close());
  const fetcher = new MtaStsPolicies({ dns: r.dns.resolver(), store, log: silentLogger(), extraCa: r.ca.caPem, addresses: { 'mta-sts.example.org': `127.0.0.1:${port}` }, fetchTimeoutMs: 5000 });
  const got = await fetcher.policyFor('example.org');
  assert.equal(got.kind, 'policy');
  assert.equal(got.kind === 'policy' && got.policy.text, want);
  assert.equal(got.kind === 'policy' && got.policy.mode, 'enforce');
  // Another host name: not found.
  const status = await new Promise<number>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, servername: 'mta-sts.example.org', headers: { host: 'mta-sts.other.example' }, path: '/.well-known/mta-sts.txt', ca: r.ca.caPem, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  assert.equal(status, 404);
});
