// DMARC aggregate reports end to end (RFC 7489 §7.2): mail from a domain whose _dmarc record asks
// for reports arrives over real SMTP, answered by a real DNS server on loopback; the report job
// runs and the gzip'd XML reaches the reporting address's MX (a loopback sink) through the queue,
// only where the destination verified itself (§7.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { simpleParser } from 'mailparser';
import { XMLParser } from 'fast-xml-parser';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { startSink } from '../delivery/sink.ts';

async function send(port: number, from: string, headerFrom: string): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO client.sender.example').expect('250');
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  await c.say('DATA').expect('354');
  c.send(`From: <${headerFrom}>\r\nTo: <bob@example.org>\r\nSubject: hi\r\nMessage-ID: <${Math.random()}@x>\r\n\r\nhello\r\n.\r\n`);
  const done = await c.read();
  await c.say('QUIT').expect('221');
  return done.raw;
}

interface Feedback {
  feedback: {
    report_metadata: { org_name: string; email: string; report_id: string; date_range: { begin: number; end: number } };
    policy_published: { domain: string; p: string; adkim: string; aspf: string; pct: number };
    record: Array<{ row: { source_ip: string; count: number; policy_evaluated: { disposition: string; dkim: string; spf: string } }; identifiers: { header_from: string }; auth_results: { spf: { domain: string; result: string } } }>;
  };
}

test('DMARC aggregate report: counted at DATA, sent once per period, gzip XML to the verified rua only', async (t) => {
  const sink = await startSink(t);
  const dns = await startDns(t, {
    'sender.example': { TXT: ['v=spf1 ip4:127.0.0.1 -all'], names: { _dmarc: { TXT: ['v=DMARC1; p=quarantine; aspf=r; rua=mailto:dmarc@reports.example!10m,mailto:stranger@other.example'] } } },
    'bulk.example': { TXT: ['v=spf1 ip4:127.0.0.1 -all'] },
    // The reports domain is outside sender.example's organization: it must say it takes them.
    'reports.example': { MX: ['10 mx.reports.example.'], names: { mx: { A: ['127.0.0.1'] }, 'sender.example._report._dmarc': { TXT: ['v=DMARC1'] } } },
    'other.example': { MX: ['10 mx.reports.example.'] },
    'example.org': {},
  });
  const srv = await startServer(t, {
    users: [['bob@example.org', 'bob password 1']],
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      pipeline: { rcpt: ['recipient', 'spf'], data: ['dkim-dmarc'] },
      dmarcReports: { send: { enabled: true, from: 'dmarc-noreply@example.org', organization: 'Example Org' } },
      queue: { minBackoff: '100ms', maxBackoff: '500ms' },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
    },
  });
  // Aligned SPF: DMARC passes. Twice, to see the count.
  assert.match(await send(srv.port('mx'), 'alice@sender.example', 'alice@sender.example'), /^250 /);
  assert.match(await send(srv.port('mx'), 'alice@sender.example', 'alice@sender.example'), /^250 /);
  // SPF passes for another domain: not aligned, DMARC fails; not enforced, so delivered (disposition none).
  assert.match(await send(srv.port('mx'), 'list@bulk.example', 'alice@sender.example'), /^250 /);
  await srv.waitForMail('bob@example.org', 3);

  assert.deepEqual(await srv.server.sendDmarcReports(Date.now() - 1000), [], 'the period has not ended');
  const runs = await srv.server.sendDmarcReports(Date.now() + 2 * 86_400_000);
  assert.deepEqual(
    runs.map((r) => `${r.domain} ${r.rua} ${r.ok}`),
    ['sender.example mailto:dmarc@reports.example!10m true', 'sender.example mailto:stranger@other.example false'],
  );
  assert.match(runs[1]!.detail, /other\.example does not publish sender\.example\._report\._dmarc\.other\.example/);
  assert.deepEqual(await srv.server.sendDmarcReports(Date.now() + 2 * 86_400_000), [], 'a period is reported once');

  const [mail] = await sink.waitForMessages(1, 60_000);
  assert.deepEqual(mail!.rcpts, ['dmarc@reports.example']);
  assert.equal(mail!.from, 'dmarc-noreply@example.org');
  const parsed = await simpleParser(mail!.body);
  assert.match(String(parsed.subject), /^Report Domain: sender\.example Submitter: mx\.example\.org Report-ID: <.+>$/);
  const att = parsed.attachments[0]!;
  assert.equal(att.contentType, 'application/gzip');
  assert.match(att.filename ?? '', /^mx\.example\.org!sender\.example!\d+!\d+!\w+\.xml\.gz$/);
  const xml = gunzipSync(att.content).toString('utf8');
  assert.match(xml, /^<\?xml version="1\.0" encoding="UTF-8"\?>/);
  const fb = (new XMLParser({ isArray: (name) => name === 'record' }).parse(xml) as Feedback).feedback;
  assert.equal(fb.report_metadata.org_name, 'Example Org');
  assert.equal(fb.report_metadata.email, 'dmarc-noreply@example.org');
  assert.ok(fb.report_metadata.date_range.end > fb.report_metadata.date_range.begin);
  assert.deepEqual(fb.policy_published, { domain: 'sender.example', adkim: 'r', aspf: 'r', p: 'quarantine', sp: 'quarantine', pct: 100 });
  const rows = fb.record.map((r) => `${r.row.source_ip} ${r.row.count} ${r.row.policy_evaluated.disposition} dkim=${r.row.policy_evaluated.dkim} spf=${r.row.policy_evaluated.spf} ${r.identifiers.header_from} spf:${r.auth_results.spf.domain}=${r.auth_results.spf.result}`).sort();
  assert.deepEqual(rows, ['127.0.0.1 1 none dkim=fail spf=fail sender.example spf:bulk.example=pass', '127.0.0.1 2 none dkim=fail spf=pass sender.example spf:sender.example=pass']);
});
