// Reading the DMARC aggregate reports others send to our rua (RFC 7489 §7.2): report mails in the
// shapes the large receivers use — a Google-like zip and a Microsoft-like gzip with namespaced
// XML — arrive over real SMTP at postmaster@example.org (an alias), are delivered to the mailbox
// and stored once per report id; `mailward dmarc report` (a real process on the same store)
// shows the numbers and the failing source. A gzip bomb, a zip bomb that lies about its size, a
// report without its id and one about a stranger's domain are refused, each with a log line naming
// the file, and the mail is still delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../harness/server.ts';
import { runMailward } from '../harness/cli.ts';
import { zipOf } from '../harness/zip.ts';

const now = Math.floor(Date.now() / 1000);
const BEGIN = now - 2 * 86_400;
const END = now - 86_400;

const record = (ip: string, count: number, disposition: string, dkim: string, spf: string, spfDomain: string, ns = ''): string =>
  `<${ns}record><${ns}row><${ns}source_ip>${ip}</${ns}source_ip><${ns}count>${count}</${ns}count><${ns}policy_evaluated><${ns}disposition>${disposition}</${ns}disposition><${ns}dkim>${dkim}</${ns}dkim><${ns}spf>${spf}</${ns}spf></${ns}policy_evaluated></${ns}row>` +
  `<${ns}identifiers><${ns}header_from>example.org</${ns}header_from></${ns}identifiers>` +
  `<${ns}auth_results>${dkim === 'pass' ? `<${ns}dkim><${ns}domain>example.org</${ns}domain><${ns}selector>mw1</${ns}selector><${ns}result>pass</${ns}result></${ns}dkim>` : ''}<${ns}spf><${ns}domain>${spfDomain}</${ns}domain><${ns}result>${spf === 'pass' ? 'pass' : 'fail'}</${ns}result></${ns}spf></${ns}auth_results></${ns}record>`;

function googleXml(id: string, domain = 'example.org'): string {
  return `<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>
    <report_id>${id}</report_id>
    <date_range><begin>${BEGIN}</begin><end>${END}</end></date_range>
  </report_metadata>
  <policy_published><domain>${domain}</domain><adkim>r</adkim><aspf>r</aspf><p>quarantine</p><sp>quarantine</sp><pct>100</pct></policy_published>
  ${record('192.0.2.10', 120, 'none', 'pass', 'pass', 'example.org')}
  ${record('198.51.100.7', 30, 'none', 'pass', 'fail', 'mailer.example')}
  ${record('203.0.113.66', 7, 'quarantine', 'fail', 'fail', 'evil.example')}
</feedback>
`;
}

// Outlook's reports qualify the elements with a namespace and declare xsd/xsi.
const microsoftXml = `<?xml version="1.0"?>
<dmarc:feedback xmlns:dmarc="http://dmarc.org/dmarc-xml/0.1" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <dmarc:version>1.0</dmarc:version>
  <dmarc:report_metadata><dmarc:org_name>Enterprise Outlook</dmarc:org_name><dmarc:email>dmarcreport@microsoft.com</dmarc:email><dmarc:report_id>a1b2c3d4e5f64a7b8c9d0e1f2a3b4c5d</dmarc:report_id><dmarc:date_range><dmarc:begin>${BEGIN}</dmarc:begin><dmarc:end>${END}</dmarc:end></dmarc:date_range></dmarc:report_metadata>
  <dmarc:policy_published><dmarc:domain>example.org</dmarc:domain><dmarc:adkim>r</dmarc:adkim><dmarc:aspf>r</dmarc:aspf><dmarc:p>quarantine</dmarc:p><dmarc:sp>quarantine</dmarc:sp><dmarc:pct>100</dmarc:pct><dmarc:fo>0</dmarc:fo></dmarc:policy_published>
  ${record('192.0.2.10', 40, 'none', 'pass', 'pass', 'example.org', 'dmarc:')}
  ${record('203.0.113.66', 5, 'quarantine', 'fail', 'fail', 'evil.example', 'dmarc:')}
</dmarc:feedback>
`;

async function sendReport(srv: TestServer, from: string, subject: string, attachments: Array<{ filename: string; content: Buffer; contentType: string }>): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: srv.port('mx'), secure: false, ignoreTLS: true, name: 'mail-reports.example' });
  try {
    const info = await transport.sendMail({ from, to: 'postmaster@example.org', subject, text: 'This is an aggregate report.', attachments });
    return info.response;
  } finally {
    transport.close();
  }
}

test('DMARC reports at our rua: zip and gzip stored once, bombs and bad ones refused, mailward dmarc report shows the numbers', async (t) => {
  const srv = await startServer(t, {
    users: [['admin@example.org', 'admin password 1']],
    aliases: [['postmaster@example.org', ['admin@example.org']]],
    config: { pipeline: { rcpt: ['recipient'], data: [] }, dmarcReports: { read: { maxXmlSize: '1MB', maxAttachmentSize: '256KB' } }, tlsReports: { read: { maxAttachmentSize: '256KB' } } },
  });
  const googleId = '12074981562386395342';
  const googleName = `google.com!example.org!${BEGIN}!${END}.zip`;
  const google = { filename: googleName, content: zipOf(`google.com!example.org!${BEGIN}!${END}.xml`, Buffer.from(googleXml(googleId))), contentType: 'application/zip' };
  assert.match(await sendReport(srv, 'noreply-dmarc-support@google.com', `Report domain: example.org Submitter: google.com Report-ID: ${googleId}`, [google]), /^250 /);
  const msName = `enterprise.protection.outlook.com!example.org!${BEGIN}!${END}.xml.gz`;
  assert.match(await sendReport(srv, 'dmarcreport@microsoft.com', 'Report Domain: example.org Submitter: enterprise.protection.outlook.com', [{ filename: msName, content: gzipSync(microsoftXml), contentType: 'application/gzip' }]), /^250 /);
  // The same Google report again (a retry of theirs): stored before, not counted twice.
  assert.match(await sendReport(srv, 'noreply-dmarc-support@google.com', 'again', [google]), /^250 /);

  const stored = await srv.waitForLog((l) => l.event === 'dmarc-report-stored' && l.org === 'Enterprise Outlook');
  assert.equal(stored.messages, 45);
  assert.equal(stored.file, msName);
  await srv.waitForLog((l) => l.event === 'dmarc-report-duplicate' && l.reportId === googleId);
  assert.equal(srv.logs.filter((l) => l.event === 'dmarc-report-stored').length, 2);

  // The hostile and the broken: 8 MiB of spaces in 8 KiB of gzip; a zip whose directory claims 100
  // bytes but inflates to 8 MiB; a report without its id; a report about someone else's domain.
  const big = Buffer.alloc(8 * 2 ** 20, 0x20);
  const bad = [
    { filename: 'bomb.example!example.org!1!2.xml.gz', content: gzipSync(big), contentType: 'application/gzip' },
    { filename: 'liar.example!example.org!1!2.zip', content: zipOf('liar.xml', big, 100), contentType: 'application/zip' },
    { filename: 'noid.example!example.org!1!2.xml', content: Buffer.from('<feedback><report_metadata><org_name>noid.example</org_name></report_metadata></feedback>'), contentType: 'text/xml' },
    { filename: 'stranger.example!other.example!1!2.xml.gz', content: gzipSync(googleXml('999', 'other.example')), contentType: 'application/gzip' },
  ];
  assert.match(await sendReport(srv, 'reports@bomb.example', 'Report Domain: example.org', bad), /^250 /);
  const reasons = new Map<string, string>();
  for (const b of bad) {
    const l = await srv.waitForLog((x) => x.event === 'dmarc-report-refused' && typeof x.file === 'string' && x.file.startsWith(b.filename));
    reasons.set(b.filename, String(l.reason));
  }
  assert.match(reasons.get(bad[0]!.filename)!, /gunzips past dmarcReports\.read\.maxXmlSize \(1048576 bytes\): refused as a decompression bomb/);
  assert.match(reasons.get(bad[1]!.filename)!, /liar\.xml: inflates past the limit.*decompression bomb/);
  assert.match(reasons.get(bad[2]!.filename)!, /lacks org_name or report_id/);
  assert.match(reasons.get(bad[3]!.filename)!, /about other\.example, not one of this server's domains/);
  // Too big to open: refused when its subject says it is a report, passed over quietly when not.
  const huge = { filename: 'big.example!example.org!1!2.xml.gz', content: randomBytes(600 * 1024), contentType: 'application/gzip' };
  assert.match(await sendReport(srv, 'reports@big.example', 'Report Domain: example.org Submitter: big.example', [huge]), /^250 /);
  const tooBig = await srv.waitForLog((l) => l.event === 'dmarc-report-refused' && l.from === 'reports@big.example');
  assert.match(String(tooBig.reason), /larger than the report size limit \(262144 bytes, dmarcReports\.read \/ tlsReports\.read maxAttachmentSize\) allows/);
  assert.match(await sendReport(srv, 'holiday@photos.example', 'our holiday photos', [{ ...huge, filename: 'photos.zip' }]), /^250 /);
  await srv.waitForLog((l) => l.event === 'dmarc-report-skipped' && l.from === 'holiday@photos.example');
  // Every one of them, the refused ones too, is in the mailbox as before.
  await srv.waitForMail('admin@example.org', 6);

  const config = path.join(srv.dataDir, 'mailward.yaml');
  writeFileSync(config, ['hostname: mx.example.org', 'domains: [example.org]', `dataDir: ${JSON.stringify(srv.dataDir)}`, 'log: { level: silent }', ''].join('\n'));
  const text = await runMailward(['dmarc', 'report', '--config', config]);
  assert.equal(text.code, 0, text.stderr);
  // 120+30+7 from Google, 40+5 from Microsoft; 30 pass on DKIM alone; 7+5 fail from one source.
  assert.match(text.stdout, /\nexample\.org: 202 messages in 2 reports \(/);
  assert.match(text.stdout, /\n {2}DMARC pass 190 \(94\.1%\), fail 12 \(5\.9%\); the receivers quarantined 12 and rejected 0\n/);
  assert.match(text.stdout, /\n {2}reporters: google\.com \(1 report, 157\), Enterprise Outlook \(1 report, 45\)\n/);
  assert.match(text.stdout, /\n {4}203\.0\.113\.66 +12 {2}From: example\.org {2}reported by Enterprise Outlook, google\.com\n/);
  assert.doesNotMatch(text.stdout, /198\.51\.100\.7|192\.0\.2\.10/, 'sources passing DMARC are not listed as failing');
  assert.match(text.stdout, /\nrefused report files: 5\n/);
  assert.match(text.stdout, /bomb\.example!example\.org!1!2\.xml\.gz from reports@bomb\.example: gunzips past/);

  const json = await runMailward(['dmarc', 'report', '--config', config, '--domain', 'example.org', '--since', '30d', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const summary = JSON.parse(json.stdout) as { domains: Array<{ domain: string; messages: number; pass: number; fail: number; failingSources: Array<{ ip: string; messages: number }> }> };
  assert.deepEqual(summary.domains.map((d) => [d.domain, d.messages, d.pass, d.fail, d.failingSources.map((f) => `${f.ip}=${f.messages}`)]), [['example.org', 202, 190, 12, ['203.0.113.66=12']]]);

  const none = await runMailward(['dmarc', 'report', '--config', config, '--domain', 'example.net']);
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /no reports yet\. They arrive at postmaster@example\.org \(the rua of your _dmarc record/);
  const badSince = await runMailward(['dmarc', 'report', '--config', config, '--since', 'lately']);
  assert.equal(badSince.code, 2);
  assert.match(badSince.stderr, /--since "lately" is not a duration; write e\.g\. 24h, 7d or 30d/);
});
