// The dashboard in a real headless browser (Debian's chromium driven by playwright-core, no
// browser download): after real traffic it shows the charts and figures, the incident's shape
// (one login sending most relayed mail, a loopback "client" that is really a tunnel), and its
// Release button reopens a real outbound guard's breaker. The screenshot is kept as a test-run
// artifact in artifacts/ (or $MAILWARD_ARTIFACTS), which CI lists at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { chromium } from 'playwright-core';
import { startAdmin } from '../../src/shells/admin/server.ts';
import { guardControlFrom } from '../../src/shells/admin/controls.ts';
import { spoolQueueStats } from '../../src/shells/admin/queue-stats.ts';
import { openDirectory } from '../../src/app/accounts.ts';
import { createStore } from '../../src/store/create.ts';
import { OutboundGuard } from '../../src/guard/guard.ts';
import { GuardSchema } from '../../src/config/guard-schema.ts';
import { TunnelDetector } from '../../src/doctor/tunnel.ts';
import { traffic, TOKEN } from './rig.ts';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { ReportReader, summarizeReports } from '../../src/app/dmarc-inbox.ts';
import { summarizeTlsReports } from '../../src/app/tlsrpt-inbox.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** The little of the DOM the page functions below use (the project compiles without the DOM library). */
interface DomEl {
  getAttribute(name: string): string | null;
  readonly textContent: string | null;
  readonly classList: { contains(c: string): boolean };
  readonly children: ArrayLike<DomEl>;
}

const sum = (csv: string | null): number => (csv ?? '').split(',').reduce((a, v) => a + Number(v), 0);

// Skipped where chromium is missing, except in CI (MAILWARD_REQUIRE_ALL_TESTS=1), where a skip would hide a lost test.
const MISSING = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium)`;
const REQUIRE_ALL = process.env.MAILWARD_REQUIRE_ALL_TESTS === '1';

test('dashboard: charts, figures, the incident shape and a working Release button in chromium', { skip: MISSING !== undefined && !REQUIRE_ALL ? MISSING : false }, async (t) => {
  if (MISSING) assert.fail(`MAILWARD_REQUIRE_ALL_TESTS=1 but the dashboard test cannot run: ${MISSING}`);
  // alice relays 12 messages in all: most of the relayed mail, the shape of a stolen login.
  const tr = await traffic(t, 9);
  const { srv, stats, metrics, ids } = tr;
  // The session reports each MAIL FROM to the detector; a tunnel shows many HELO names and domains.
  const tunnels = new TunnelDetector({ log: pino({ level: 'silent' }), onSuspect: (s) => stats.noteTunnel(s) });
  for (let i = 0; i < 6; i++) tunnels.observe('127.0.0.1', `bot${i}.example`, `spam${i}.example`);
  assert.equal(tunnels.isSuspect('127.0.0.1'), true);

  const directory = openDirectory(srv.config);
  t.after(() => directory.close());
  const store = await createStore({ backend: 'sqlite', sqlite: { path: path.join(tr.dir, 'guard.sqlite') }, redis: { keyPrefix: '', timeoutMs: 1000 } }, pino({ level: 'silent' }));
  t.after(() => store.close());
  const guard = new OutboundGuard({ store, clock: Date.now, log: pino({ level: 'silent' }), hostname: 'mx.example.org', settings: GuardSchema.parse({ alerts: { postmaster: false } }) });
  await guard.breakers.trip({ name: 'login:alice@example.org', kind: 'baseline', reason: '1200 relayed recipients in the last hour, 10× the baseline', trippedAt: Date.now() - 300_000, figures: {} });

  // A DMARC aggregate report received at the rua: one source passing, one failing (someone sending as example.org).
  const end = Math.floor(Date.now() / 1000) - 3600;
  const rec = (ip: string, count: number, pass: string) =>
    `<record><row><source_ip>${ip}</source_ip><count>${count}</count><policy_evaluated><disposition>none</disposition><dkim>${pass}</dkim><spf>${pass}</spf></policy_evaluated></row><identifiers><header_from>example.org</header_from></identifiers><auth_results><spf><domain>example.org</domain><result>${pass}</result></spf></auth_results></record>`;
  const xml = `<?xml version="1.0"?><feedback><report_metadata><org_name>google.com</org_name><email>noreply-dmarc-support@google.com</email><report_id>42</report_id><date_range><begin>${end - 86_400}</begin><end>${end}</end></date_range></report_metadata><policy_published><domain>example.org</domain><p>none</p></policy_published>${rec('192.0.2.10', 50, 'pass')}${rec('203.0.113.66', 9, 'fail')}</feedback>`;
  const mail = `From: noreply-dmarc-support@google.com\r\nTo: postmaster@example.org\r\nSubject: Report domain: example.org\r\nMIME-Version: 1.0\r\nContent-Type: application/gzip; name="google.com!example.org!${end - 86_400}!${end}.xml.gz"\r\nContent-Disposition: attachment; filename="google.com!example.org!${end - 86_400}!${end}.xml.gz"\r\nContent-Transfer-Encoding: base64\r\n\r\n${gzipSync(xml).toString('base64')}\r\n`;
  const reader = new ReportReader({ store, log: pino({ level: 'silent' }), addresses: ['postmaster@example.org'], limits: { maxAttachmentSize: 2 ** 20, maxXmlSize: 2 ** 20, maxRecords: 100 }, retentionMs: 86_400_000, isOurDomain: (d) => d === 'example.org', clock: Date.now });
  assert.deepEqual((await reader.read('q1', 'noreply-dmarc-support@google.com', () => Readable.from([Buffer.from(mail)]))).map((r) => r.stored), [true]);
  // A TLS-RPT report (RFC 8460) received at the same rua: senders failed to validate our certificate.
  const tlsDay = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  const tlsJson = JSON.stringify({ 'organization-name': 'Google Inc.', 'date-range': { 'start-datetime': `${tlsDay}T00:00:00Z`, 'end-datetime': `${tlsDay}T23:59:59Z` }, 'contact-info': 'smtp-tls-reporting@google.com', 'report-id': 't-1', policies: [{ policy: { 'policy-type': 'sts', 'policy-domain': 'example.org', 'mx-host': ['mx.example.org'] }, summary: { 'total-successful-session-count': 80, 'total-failure-session-count': 4 }, 'failure-details': [{ 'result-type': 'certificate-expired', 'sending-mta-ip': '209.85.220.41', 'receiving-mx-hostname': 'mx.example.org', 'failed-session-count': 4 }] }] });
  const tlsMail = `From: noreply-smtp-tls-reporting@google.com\r\nTo: postmaster@example.org\r\nSubject: Report Domain: example.org Submitter: google.com Report-ID: <t-1>\r\nMIME-Version: 1.0\r\nContent-Type: application/tlsrpt+gzip; name="google.com!example.org!${tlsDay}!t-1.json.gz"\r\nContent-Disposition: attachment; filename="google.com!example.org!${tlsDay}!t-1.json.gz"\r\nContent-Transfer-Encoding: base64\r\n\r\n${gzipSync(tlsJson).toString('base64')}\r\n`;
  const tlsReader = new ReportReader({ store, log: pino({ level: 'silent' }), addresses: ['postmaster@example.org'], limits: undefined, tls: { limits: { maxAttachmentSize: 2 ** 20, maxJsonSize: 2 ** 20, maxPolicies: 10, maxFailureDetails: 10 }, retentionMs: 86_400_000 }, retentionMs: 86_400_000, isOurDomain: (d) => d === 'example.org', clock: Date.now });
  assert.deepEqual((await tlsReader.read('q2', 'noreply-smtp-tls-reporting@google.com', () => Readable.from([Buffer.from(tlsMail)]))).map((r) => r.stored), [true]);

  const admin = await startAdmin({
    dmarcReports: (ms) => summarizeReports(store, { since: Date.now() - ms }),
    tlsReports: (ms) => summarizeTlsReports(store, { since: Date.now() - ms }),
    config: { host: '127.0.0.1', port: 0, tokenFile: tr.tokenFile, metricsRequireToken: true },
    stats,
    metrics,
    directory,
    queueStats: spoolQueueStats(srv.config.paths.spool, { minAgeMs: 0 }),
    guardControl: guardControlFrom(guard),
    log: tr.adminLog,
  });
  t.after(() => admin.close());

  const profile = mkdtempSync(path.join(tmpdir(), 'mailward-chromium-'));
  // A persistent context is how playwright takes a fresh --user-data-dir.
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1300, height: 900 } });
  // One hook, in this order: after-hooks run in registration order, and removing the profile while
  // chromium still writes into it fails with ENOTEMPTY (it did in CI). Retries cover late writers.
  t.after(async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  const failures: string[] = [];
  const watch = (p: typeof page): void => {
    p.on('pageerror', (e) => failures.push(String(e)));
    p.on('console', (m) => {
      // The browser reports the refused wrong token itself ("… status of 401"); that one is expected.
      if (m.type() === 'error' && !/status of 401/.test(m.text())) failures.push(m.text());
    });
  };
  watch(page);
  const base = `http://127.0.0.1:${admin.port}/`;

  // A wrong token: the login form, with the reason.
  await page.goto(`${base}#token=not-the-token-at-all`);
  await page.waitForSelector('#login:not([hidden])');
  assert.equal(await page.textContent('#login-error'), 'The token was refused.');
  assert.equal(await page.isHidden('#main'), true);

  // The right token, typed into the form.
  await page.fill('#token-input', TOKEN);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('body[data-renders]');
  assert.equal(await page.isVisible('#main'), true);

  // Or given once in the fragment (never sent to the server): taken out of the address bar at once.
  await page.close();
  const fresh = await browser.newPage();
  watch(fresh);
  await fresh.goto(`${base}#token=${TOKEN}`);
  await fresh.waitForSelector('body[data-renders]');
  assert.equal(new URL(fresh.url()).hash, '');
  assert.deepEqual([await fresh.isHidden('#login'), await fresh.isVisible('#main')], [true, true]);
  const page2 = fresh;

  // Figures.
  const card = (id: string): Promise<string | null> => page2.textContent(`#card-${id} .value`);
  assert.deepEqual(await Promise.all(['queue', 'held', 'accepted', 'relayed', 'rejected', 'delivered', 'bounced'].map(card)), ['1', '0', '14', '13', '2', '14', '0']);
  assert.match((await card('oldest')) ?? '', /^\d+ s$/);

  // Charts: 24 h and 7 d, each series carrying exactly the counts.
  for (const [id, hours] of [['#svg-24h', 24], ['#svg-7d', 168]] as const) {
    const values = (series: string): Promise<string | null> => page2.getAttribute(`${id} [data-series="${series}"]`, 'data-values');
    assert.equal((await values('accepted'))?.split(',').length, hours);
    assert.deepEqual((await Promise.all(['accepted', 'relayed', 'delivered', 'bounced', 'rejected'].map(values))).map(sum), [14, 13, 14, 0, 2]);
  }
  assert.deepEqual(await page2.$$eval('#svg-24h rect.bar', (rs: DomEl[]) => rs.map((r) => r.getAttribute('data-reason')).sort()), ['recipient', 'sender-login']);
  assert.deepEqual(await page2.$$eval('#chart-24h .legend [data-reason]', (ls: DomEl[]) => ls.map((l) => l.textContent)), ['rejected: recipient (1)', 'rejected: sender-login (1)']);

  // Top senders: alice relays most, flagged; the loopback address too.
  const rows = (id: string) => page2.$$eval(`#${id} .top-row`, (rs: DomEl[]) => rs.map((r) => [r.getAttribute('data-key'), r.getAttribute('data-relayed'), r.getAttribute('data-messages'), r.classList.contains('dominant')]));
  assert.deepEqual(await rows('top-logins'), [['alice@example.org', '12', '12', true]]);
  assert.equal(await page2.textContent('#top-logins .top-row .count'), '12 relayed of 12');
  assert.deepEqual(await rows('top-clients'), [['127.0.0.1', '13', '14', true]]);
  assert.equal(sum(await page2.getAttribute('#top-logins .top-row path.spark', 'data-values')), 12);

  // The warnings at the top: the tunnel, the open breaker, the dominant senders.
  assert.match((await page2.textContent('#alerts .alert.tunnel[data-address="127.0.0.1"]')) ?? '', /^Client 127\.0\.0\.1 looks like a tunnel or proxy carrying many clients \(5 HELO names and 5 sender domains/);
  assert.equal(await page2.textContent('#alerts .alert.breaker'), 'Breaker login:alice@example.org is open: 1200 relayed recipients in the last hour, 10× the baseline. Outbound mail from it is held.');
  assert.equal(await page2.textContent('#alerts .alert.dominant[data-key="alice@example.org"]'), 'alice@example.org sent 92% of the relayed mail in the last 24 hours (12 messages).');

  // Why each relayed message was allowed to leave.
  const relayed = await page2.$$eval('#relayed tbody tr', (trs: DomEl[]) => trs.map((r) => [r.getAttribute('data-queue-id'), r.children[4]?.textContent, r.children[5]?.textContent]));
  assert.equal(relayed.length, 13);
  assert.deepEqual(relayed[0], [ids.trusted, 'trusted-network:127.0.0.1/32', '127.0.0.1']);
  assert.deepEqual(relayed.at(-1), [ids.alice[0], 'login:alice@example.org', '127.0.0.1']);
  assert.ok((await page2.$$('#decisions tbody tr[data-event="rejected"]')).length === 2);

  // The DMARC panel: the stored report's figures, and the failing source flagged.
  assert.equal(await page2.isVisible('#dmarc'), true);
  assert.deepEqual(await page2.$$eval('#dmarc-domains tbody tr', (trs: DomEl[]) => trs.map((r) => Array.from(r.children).map((c) => c.textContent))), [['example.org', '1', '59', '50 (84.7%)', '9 (15.3%)', 'google.com (59)']]);
  assert.deepEqual(await page2.$$eval('#dmarc-failing tbody tr', (trs: DomEl[]) => trs.map((r) => [r.getAttribute('data-ip'), r.children[2]?.textContent, r.children[4]?.textContent, r.children[0]?.classList.contains('flag')])), [['203.0.113.66', '9', 'google.com', true]]);
  // The TLS-RPT panel beside it: the policy's sessions, the failure flagged with its likely cause.
  assert.equal(await page2.isVisible('#tlsrpt'), true);
  assert.deepEqual(await page2.$$eval('#tlsrpt-policies tbody tr', (trs: DomEl[]) => trs.map((r) => Array.from(r.children).map((c) => c.textContent))), [['example.org', 'sts', '1', '80', '4', 'certificate-expired (4)', 'Google Inc.']]);
  assert.equal(await page2.$eval('#tlsrpt-policies tbody tr', (r: DomEl) => r.children[4]?.classList.contains('flag')), true);
  const tlsRows = await page2.$$eval('#tlsrpt-failures tbody tr', (trs: DomEl[]) => trs.map((r) => [r.getAttribute('data-result'), r.children[2]?.textContent, r.children[3]?.textContent, r.children[4]?.textContent, r.children[0]?.classList.contains('flag'), r.children[6]?.textContent]));
  assert.equal(tlsRows.length, 1);
  assert.deepEqual(tlsRows[0]!.slice(0, 5), ['certificate-expired', '209.85.220.41', 'mx.example.org', '4', true]);
  assert.match(String(tlsRows[0]![5]), /certificate has expired: renew it/);

  const artifacts = process.env.MAILWARD_ARTIFACTS ?? path.join(import.meta.dirname, '..', '..', 'artifacts');
  mkdirSync(artifacts, { recursive: true });
  const shot = path.join(artifacts, 'dashboard.png');
  await page2.screenshot({ path: shot, fullPage: true });
  assert.ok(existsSync(shot), `screenshot written to ${shot}`);
  t.diagnostic(`dashboard screenshot: ${shot}`);

  // Release: the breaker closes in the guard, and the page shows it.
  assert.equal(await page2.textContent('#breakers tbody tr[data-name="login:alice@example.org"] td.state-open'), 'open');
  await page2.click('#breakers button.release[data-name="login:alice@example.org"]');
  await page2.waitForSelector('#breakers tbody td.empty');
  assert.equal(await page2.textContent('#breakers tbody td.empty'), 'no breakers');
  assert.deepEqual((await guard.status()).breakers, []);
  assert.equal(await page2.$('#alerts .alert.breaker'), null);
  assert.deepEqual(failures, []);
});
