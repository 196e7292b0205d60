// Reading the TLS-RPT reports (RFC 8460) others send to our rua, and the alert on a new failing
// source: over real SMTP a gzip'd TLS-RPT report mail (multipart/report, application/tlsrpt+gzip)
// showing certificate failures at our MX, and a DMARC report with a source failing as our domain,
// reach postmaster@example.org; each is stored, the mail delivered, and one alert per source goes
// to a webhook on loopback (a second copy of the reports alerts nothing). A gzip bomb and a report
// with a broken count are refused with a line naming what is wrong, the mail still delivered, and
// the server keeps serving. `mailward tlsrpt report` (a real process on the same store) shows it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../harness/server.ts';
import { runMailward } from '../harness/cli.ts';
import { startWebhook } from '../guard/helpers.ts';

const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

function tlsReport(id: string, failures: number): Record<string, unknown> {
  return {
    'organization-name': 'Google Inc.',
    'date-range': { 'start-datetime': `${day}T00:00:00Z`, 'end-datetime': `${day}T23:59:59Z` },
    'contact-info': 'smtp-tls-reporting@google.com',
    'report-id': id,
    policies: [
      {
        policy: { 'policy-type': 'sts', 'policy-string': ['version: STSv1', 'mode: enforce', 'mx: mx.example.org', 'max_age: 604800'], 'policy-domain': 'example.org', 'mx-host': ['mx.example.org'] },
        summary: { 'total-successful-session-count': 120, 'total-failure-session-count': failures },
        'failure-details': [{ 'result-type': 'certificate-expired', 'sending-mta-ip': '209.85.220.41', 'receiving-mx-hostname': 'mx.example.org', 'receiving-ip': '192.0.2.25', 'failed-session-count': failures }],
      },
    ],
  };
}

const dmarcXml = (id: string): string =>
  `<?xml version="1.0"?><feedback><report_metadata><org_name>google.com</org_name><email>noreply-dmarc-support@google.com</email><report_id>${id}</report_id><date_range><begin>${Math.floor(Date.now() / 1000) - 90_000}</begin><end>${Math.floor(Date.now() / 1000) - 3600}</end></date_range></report_metadata><policy_published><domain>example.org</domain><p>none</p></policy_published>` +
  `<record><row><source_ip>192.0.2.10</source_ip><count>40</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.org</header_from></identifiers></record>` +
  `<record><row><source_ip>203.0.113.66</source_ip><count>9</count><policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.org</header_from></identifiers></record></feedback>`;

async function sendTlsReport(srv: TestServer, name: string, content: Buffer): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: srv.port('mx'), secure: false, ignoreTLS: true, name: 'mail-reports.example' });
  try {
    const info = await transport.sendMail({
      from: 'noreply-smtp-tls-reporting@google.com',
      to: 'postmaster@example.org',
      subject: `Report Domain: example.org Submitter: google.com Report-ID: <${name}>`,
      text: 'This is an aggregate TLS report from google.com',
      attachments: [{ filename: name, content, contentType: 'application/tlsrpt+gzip' }],
    });
    return info.response;
  } finally {
    transport.close();
  }
}

async function sendDmarcReport(srv: TestServer, id: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: srv.port('mx'), secure: false, ignoreTLS: true, name: 'mail-reports.example' });
  try {
    const info = await transport.sendMail({ from: 'noreply-dmarc-support@google.com', to: 'postmaster@example.org', subject: `Report domain: example.org Submitter: google.com Report-ID: ${id}`, text: 'report', attachments: [{ filename: `google.com!example.org!1!2!${id}.xml.gz`, content: gzipSync(dmarcXml(id)), contentType: 'application/gzip' }] });
    return info.response;
  } finally {
    transport.close();
  }
}

test('TLS-RPT reports at our rua are stored and shown; new failures and a new DMARC failing source alert once on the webhook; bad reports refused, mail kept', async (t) => {
  const hook = await startWebhook(t);
  const srv = await startServer(t, {
    users: [['admin@example.org', 'admin password 1']],
    aliases: [['postmaster@example.org', ['admin@example.org']]],
    config: { pipeline: { rcpt: ['recipient'], data: [] }, checks: { 'outbound-guard': { alerts: { webhook: hook.url, postmaster: false } } }, tlsReports: { read: { maxJsonSize: '64KB' } } },
  });
  const name = `google.com!example.org!${day}!001.json.gz`;
  assert.match(await sendTlsReport(srv, name, gzipSync(JSON.stringify(tlsReport('2026-tls-1', 7)))), /^250 /);
  const stored = await srv.waitForLog((l) => l.event === 'tlsrpt-report-stored');
  assert.equal(stored.failed, 7);
  assert.equal(stored.successful, 120);
  assert.match(await sendDmarcReport(srv, 'dm-1'), /^250 /);
  await srv.waitForLog((l) => l.event === 'dmarc-report-stored' && l.reportId === 'dm-1');

  const alerts = await hook.waitFor(2, 20_000);
  const tls = alerts.find((a) => a.type === 'tlsrpt-failure');
  const dmarc = alerts.find((a) => a.type === 'dmarc-failing-source');
  assert.ok(tls && dmarc, JSON.stringify(alerts));
  assert.match(String(tls.reason), /7 TLS session\(s\) to mx\.example\.org for example\.org failed with certificate-expired \(policy sts\).*renew it/);
  assert.equal((tls.figures as Record<string, unknown>).sendingMta, '209.85.220.41');
  assert.match(String(dmarc.reason), /9 message\(s\) from 203\.0\.113\.66 with From: example\.org that failed DMARC/);
  assert.equal((dmarc.figures as Record<string, unknown>).source, '203.0.113.66');
  await srv.waitForLog((l) => l.event === 'report-alert' && l.kind === 'dmarc-failing-source');

  // The same findings again (another report id): stored, not alerted again within the window.
  assert.match(await sendTlsReport(srv, `google.com!example.org!${day}!002.json.gz`, gzipSync(JSON.stringify(tlsReport('2026-tls-2', 3)))), /^250 /);
  assert.match(await sendDmarcReport(srv, 'dm-2'), /^250 /);
  await srv.waitForLog((l) => l.event === 'dmarc-report-stored' && l.reportId === 'dm-2');
  await srv.waitForLog((l) => l.event === 'tlsrpt-report-stored' && l.reportId === '2026-tls-2');

  // A bomb (1 MiB of spaces, over maxJsonSize) and a report whose count is not a number.
  assert.match(await sendTlsReport(srv, 'bomb.example!example.org!1!2.json.gz', gzipSync(Buffer.alloc(2 ** 20, 0x20))), /^250 /);
  const bomb = await srv.waitForLog((l) => l.event === 'tlsrpt-report-refused' && l.file === 'bomb.example!example.org!1!2.json.gz');
  assert.match(String(bomb.reason), /gunzips past tlsReports\.read\.maxJsonSize \(65536 bytes\): refused as a decompression bomb/);
  const broken = tlsReport('2026-tls-3', 1) as { policies: Array<{ summary: Record<string, unknown> }> };
  broken.policies[0]!.summary['total-failure-session-count'] = 'many';
  assert.match(await sendTlsReport(srv, 'broken.json.gz', gzipSync(JSON.stringify(broken))), /^250 /);
  const bad = await srv.waitForLog((l) => l.event === 'tlsrpt-report-refused' && l.file === 'broken.json.gz');
  assert.match(String(bad.reason), /policies\[0\]\.summary\.total-failure-session-count is "many", not a whole number/);
  // Every mail is in the mailbox, and the server still serves.
  await srv.waitForMail('admin@example.org', 6);
  assert.equal(hook.received.filter((a) => a.type === 'tlsrpt-failure' || a.type === 'dmarc-failing-source').length, 2);

  const config = path.join(srv.dataDir, 'mailward.yaml');
  writeFileSync(config, ['hostname: mx.example.org', 'domains: [example.org]', `dataDir: ${JSON.stringify(srv.dataDir)}`, 'log: { level: silent }', ''].join('\n'));
  const text = await runMailward(['tlsrpt', 'report', '--config', config]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /\nexample\.org \(policy sts\): 2 report\(s\), .* FAILURES\n/);
  assert.match(text.stdout, /\n {2}sessions successful 240, failed 10\n/);
  assert.match(text.stdout, /\n {2}failure types: certificate-expired 10\n/);
  assert.match(text.stdout, /\n {4}certificate-expired +10 {2}from 209\.85\.220\.41 to mx\.example\.org {2}reported by Google Inc\.\n/);
  assert.match(text.stdout, /\nrefused report files: 2\n/);
  const json = await runMailward(['tlsrpt', 'report', '--config', config, '--json', '--domain', 'example.org']);
  assert.equal(json.code, 0, json.stderr);
  const summary = JSON.parse(json.stdout) as { policies: Array<{ domain: string; type: string; successful: number; failed: number; flagged: boolean }> };
  assert.deepEqual(summary.policies.map((p) => [p.domain, p.type, p.successful, p.failed, p.flagged]), [['example.org', 'sts', 240, 10, true]]);
});
