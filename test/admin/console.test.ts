// The incident console in a real headless Chromium against a real server (admin enabled in its
// config, so the composition root wires it): "stop all outbound" from the dashboard keeps real
// SMTP submissions queued without an attempt while local mail is delivered; the queue grouped by
// sender, login, domain and state; bulk hold, release and delete after a confirmation, each one
// audited log line; a message's provenance, headers and recipients; forged POSTs refused; start
// delivers what waited. Screenshots go to artifacts/ (or $MAILWARD_ARTIFACTS).
import { test } from 'node:test';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { dial, type Dialog } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { startSink } from '../delivery/sink.ts';
import { controlSummary } from '../../src/queue/control.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const MISSING = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium)`;
const REQUIRE_ALL = process.env.MAILWARD_REQUIRE_ALL_TESTS === '1';
const TOKEN = 'console-admin-token-0123456789abcdef';
const USERS: Array<[string, string]> = [
  ['alice@example.org', 'alice password 1'],
  ['bob@example.org', 'bob password 22'],
];

async function login(port: number, user: [string, string]): Promise<Dialog> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO client.example.net').expect('250');
  await c.say('STARTTLS').expect('220');
  await c.startTls();
  await c.say('EHLO client.example.net').expect('250');
  await c.say(`AUTH PLAIN ${Buffer.from(`\0${user[0]}\0${user[1]}`).toString('base64')}`).expect('235');
  return c;
}

async function send(c: Dialog, from: string, to: string[], subject: string): Promise<string> {
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  for (const r of to) await c.say(`RCPT TO:<${r}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send(`From: ${from}\r\nTo: ${to.join(', ')}\r\nSubject: ${subject}\r\n\r\nHello.\r\n.\r\n`);
  return (await c.expect('250 2.0.0 Ok: queued as ')).text.split(' ').pop()!;
}

/** The little of the DOM the page functions below use (the project compiles without the DOM library). */
interface Dom {
  readonly document: {
    getElementById(id: string): { readonly textContent: string | null } | null;
    querySelectorAll(sel: string): ArrayLike<{ getAttribute(n: string): string | null }>;
    readonly body: { getAttribute(n: string): string | null };
  };
}

const artifacts = (): string => {
  const dir = process.env.MAILWARD_ARTIFACTS ?? path.join(import.meta.dirname, '..', '..', 'artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
};

test('incident console: stop all outbound, queue groups, bulk hold/release/delete with confirmation, message detail, CSRF, in chromium', { skip: MISSING !== undefined && !REQUIRE_ALL ? MISSING : false }, async (t) => {
  if (MISSING) assert.fail(`MAILWARD_REQUIRE_ALL_TESTS=1 but the console test cannot run: ${MISSING}`);
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-console-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = path.join(dir, 'admin.token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const sink = await startSink(t);
  const dns = await startDns(t, { 'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } }, 'example.com': { MX: ['10 mx.example.com.'], names: { mx: { A: ['127.0.0.1'] } } } });
  const srv = await startServer(t, {
    users: USERS,
    config: {
      dns: { servers: [dns.address], timeout: '1s', tries: 1 },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
      admin: { enabled: true, port: 0, tokenFile },
      // The queue-growth alarm at the ceiling of the four messages queued below, sampled often.
      checks: { 'outbound-guard': { queueGrowth: { interval: '100ms', window: '1s', floor: 1_000_000, ceiling: 4 }, alerts: { postmaster: false } } },
    },
  });
  const base = `http://127.0.0.1:${srv.server.adminPort()!}`;

  const profile = mkdtempSync(path.join(tmpdir(), 'mailward-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1300, height: 900 } });
  t.after(async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  });
  const page: Page = browser.pages()[0] ?? (await browser.newPage());
  const failures: string[] = [];
  page.on('pageerror', (e) => failures.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) failures.push(m.text());
  });
  const renders = async (): Promise<number> => Number(await page.getAttribute('body', 'data-renders'));
  const rendered = async (after: number): Promise<void> => {
    await page.waitForFunction((a) => Number((globalThis as unknown as Dom).document.body.getAttribute('data-renders')) > a, after);
  };
  const confirm = async (text: RegExp): Promise<void> => {
    await page.waitForSelector('#confirm:not([hidden])');
    assert.match((await page.textContent('#confirm-text')) ?? '', text);
  };

  await page.goto(`${base}/#token=${TOKEN}`);
  await page.waitForSelector('body[data-renders]');
  assert.equal(await page.isVisible('#outbound-flowing'), true);
  // The session is an HttpOnly SameSite=Strict cookie; the token is kept nowhere in the page.
  const cookie = (await browser.cookies(`${base}/api/`)).find((c) => c.name === 'mailward_session')!;
  assert.deepEqual([cookie.httpOnly, cookie.sameSite, cookie.path], [true, 'Strict', '/api']);
  assert.equal(await page.evaluate('JSON.stringify(sessionStorage) + document.cookie'), '{}');

  // Stop all outbound: asks first; Cancel changes nothing, Yes stops it (persisted, logged, metric).
  await page.click('#outbound-stop');
  await confirm(/^Stop ALL outbound mail\?/);
  await page.click('#confirm-no');
  assert.equal(existsSync(path.join(srv.dataDir, 'outbound.json')), false);
  let n = await renders();
  await page.click('#outbound-stop');
  await confirm(/^Stop ALL outbound mail\?/);
  await page.click('#confirm-yes');
  await rendered(n);
  await page.waitForSelector('#outbound-stopped:not([hidden])');
  assert.match((await page.textContent('#outbound-reason')) ?? '', /by dashboard session \S+ \(127\.0\.0\.1\)\. Local delivery goes on\.$/);
  assert.equal((JSON.parse(readFileSync(path.join(srv.dataDir, 'outbound.json'), 'utf8')) as { stopped: boolean }).stopped, true);
  await srv.waitForLog((l) => l.event === 'outbound-stopped' && typeof l.by === 'string' && l.by.startsWith('dashboard session'));
  const metrics = async (): Promise<string> => (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  assert.match(await metrics(), /^mailward_outbound_stopped 1$/m);

  // Real submissions while stopped: remote mail is paused (no attempt), local mail delivered.
  const a = await login(srv.port('submission'), USERS[0]!);
  const aliceIds = [await send(a, 'alice@example.org', ['v1@example.net'], 'one'), await send(a, 'alice@example.org', ['v2@example.net'], 'two'), await send(a, 'alice@example.org', ['spam@example.com', 'bob@example.org'], 'three')];
  await a.say('QUIT').expect('221');
  const b = await login(srv.port('submission'), USERS[1]!);
  const bobId = await send(b, 'bob@example.org', ['friend@example.net'], 'from bob');
  await b.say('QUIT').expect('221');
  await srv.waitForMail('bob@example.org');
  for (const id of [...aliceIds, bobId]) await srv.waitForLog((l) => l.event === 'outbound-paused' && l.queueId === id);
  assert.equal(sink.connections, 0, 'no connection to the outside while stopped');
  assert.equal(srv.logs.filter((l) => l.event === 'deferred' && l.transport === 'remote').length, 0, 'a pause is not an attempt');

  // The queue by sender, login, domain and state.
  n = await renders();
  await page.evaluate('window.MailwardUi.refresh()');
  await rendered(n);
  const groups = (): Promise<Array<[string | null, string | null]>> => page.$$eval('#queue-groups tbody tr[data-key]', (rs: Array<{ getAttribute(n: string): string | null }>) => rs.map((r) => [r.getAttribute('data-key'), r.getAttribute('data-count')] as [string | null, string | null]));
  const groupBy = async (by: string, want: Array<[string, string]>): Promise<void> => {
    await page.click(`button.group-by[data-by="${by}"]`);
    await page.waitForFunction(
      (w) => Array.from((globalThis as unknown as Dom).document.querySelectorAll('#queue-groups tbody tr[data-key]')).map((r) => `${r.getAttribute('data-key')}=${r.getAttribute('data-count')}`).join(',') === w,
      want.map(([k, v]) => `${k}=${v}`).join(','),
    );
  };
  await groupBy('login', [['alice@example.org', '3'], ['bob@example.org', '1']]);
  await groupBy('domain', [['example.net', '3'], ['example.com', '1']]);
  await groupBy('state', [['deferred', '4']]);
  await groupBy('sender', [['alice@example.org', '3'], ['bob@example.org', '1']]);
  assert.equal(await page.textContent('#queue-total'), '4 message(s): 0 held, 4 deferred, 0 pending');
  // The "queued messages" card counts the live catalog: what `queue list --summary` says (it once
  // showed a cached spool scan's 0 with mail queued).
  const summary = (await controlSummary(srv.config.paths.spool, { op: 'summary', filter: {}, top: 10 }))!;
  assert.deepEqual([summary.messages, summary.held], [4, 0]);
  assert.equal(await page.textContent('#card-queue .value'), String(summary.messages - summary.held));
  assert.equal(await page.textContent('#card-held .value'), '0');
  // The fourth message is the ceiling: the alarm, and the dashboard shows it.
  const growth = await srv.waitForLog((l) => l.event === 'breaker' && l.state === 'alarm' && l.breaker === 'queue-growth');
  assert.equal(growth.kind, 'ceiling');
  n = await renders();
  await page.evaluate('window.MailwardUi.refresh()');
  await rendered(n);
  assert.match((await page.textContent('#alerts .alert.queue-growth')) ?? '', /^Queue growth alarm since .+: 4 messages are queued \(ceiling 4\)\. Look at the queue by sender, login and domain/);
  assert.equal(await page.getAttribute('#card-growth', 'class'), 'card warn');
  await page.screenshot({ path: path.join(artifacts(), 'console-queue-growth.png'), fullPage: true });
  // A filter narrows every view.
  await page.selectOption('#filter-field', 'domain');
  await page.fill('#filter-value', 'example.com');
  await page.click('#queue-filter button[type=submit]');
  await page.waitForFunction((k) => (globalThis as unknown as Dom).document.querySelectorAll('#queue-groups tbody tr[data-key]').length === k, 1);
  assert.deepEqual(await groups(), [['alice@example.org', '1']]);
  // Bulk delete of the filtered group: the count first, then one audited line.
  await page.click('#queue-groups tr[data-key="alice@example.org"] button.delete');
  await confirm(/^Delete 1 message\(s\) where domain = example\.com, sender = alice@example\.org\?$/);
  await page.click('#confirm-yes');
  await page.waitForFunction((p) => ((globalThis as unknown as Dom).document.getElementById('console-status')?.textContent ?? '').startsWith(p), 'delete: 1 of 1');
  const del = await srv.waitForLog((l) => l.event === 'queue-admin' && l.op === 'delete');
  assert.match(String(del.operator), /^dashboard session \S+ \(127\.0\.0\.1\) confirmed 1$/);
  assert.deepEqual(del.selector, { filter: { domain: 'example.com', sender: 'alice@example.org' } });
  await page.fill('#filter-value', '');
  await page.click('#queue-filter button[type=submit]');
  await page.waitForFunction((k) => (globalThis as unknown as Dom).document.querySelectorAll('#queue-groups tbody tr[data-key]').length === k, 2);

  // Bulk hold of alice's mail, then release, each with a confirmation and one log line.
  await page.click('#queue-groups tr[data-key="alice@example.org"] button.hold');
  await confirm(/^Hold 2 message\(s\) where sender = alice@example\.org\?$/);
  await page.click('#confirm-yes');
  await page.waitForFunction((p) => ((globalThis as unknown as Dom).document.getElementById('console-status')?.textContent ?? '').startsWith(p), 'hold: 2 of 2');
  await groupBy('state', [['held', '2'], ['deferred', '1']]);
  const cards = (): Promise<string> => page.evaluate('document.getElementById("card-queue").lastChild.textContent + "/" + document.getElementById("card-held").lastChild.textContent');
  await page.evaluate('window.MailwardUi.refresh()');
  await page.waitForFunction(() => ((globalThis as unknown as Dom).document.getElementById('card-held')?.textContent ?? '').endsWith('2'));
  assert.equal(await cards(), '1/2', 'queued and held cards after the hold: 1 queued, 2 held');
  const holds = srv.logs.filter((l) => l.event === 'queue-admin' && l.op === 'hold');
  assert.equal(holds.length, 1, 'one line for the bulk hold, not one per message');
  assert.deepEqual([holds[0]!.changed, holds[0]!.selector], [2, { filter: { sender: 'alice@example.org' } }]);
  await page.click('#queue-groups tr[data-key="held"] button.release');
  await confirm(/^Release 2 message\(s\) where state = held\?$/);
  await page.click('#confirm-yes');
  await page.waitForFunction((p) => ((globalThis as unknown as Dom).document.getElementById('console-status')?.textContent ?? '').startsWith(p), 'release: 2 of 2');
  await srv.waitForLog((l) => l.event === 'queue-admin' && l.op === 'release' && l.changed === 2);

  // One message: provenance, headers, recipient states (no attempt made while stopped).
  await page.fill('#message-id', bobId);
  await page.click('#message-show');
  await page.waitForSelector('#message-recipients');
  const field = (k: string): Promise<string | null> => page.textContent(`#provenance dd[data-field="${k}"]`);
  assert.deepEqual(await Promise.all(['from', 'client', 'login', 'relay', 'listener'].map(field)), ['bob@example.org', '127.0.0.1', 'bob@example.org', 'login:bob@example.org', 'submission']);
  assert.match((await page.textContent('#message-headers')) ?? '', /^Subject: from bob\r?$/m);
  const rcpt = await page.$$eval('#message-recipients tbody tr', (rs: Array<{ readonly children: ArrayLike<{ readonly textContent: string | null }> }>) => rs.map((r) => Array.from(r.children).map((c) => c.textContent)));
  assert.deepEqual(rcpt.map((r) => r.slice(0, 4)), [['friend@example.net', 'remote', 'deferred', '0']]);
  assert.match(String(rcpt[0]![4]), /^451 4\.3\.2 Outbound delivery stopped/);
  await page.screenshot({ path: path.join(artifacts(), 'console-stopped.png'), fullPage: true });
  t.diagnostic(`console screenshot: ${path.join(artifacts(), 'console-stopped.png')}`);

  // Forgery: no state change on GET; a POST without the session's token, from another site, or
  // with a foreign Origin is refused, cookie or not.
  const session = `mailward_session=${cookie.value}`;
  assert.equal((await fetch(`${base}/api/outbound/start`, { headers: { cookie: session } })).status, 404);
  const forged: Array<Record<string, string>> = [
    { cookie: session, 'sec-fetch-site': 'same-origin' },
    { cookie: session, 'sec-fetch-site': 'cross-site', 'x-mailward-csrf': 'guess' },
    { authorization: `Bearer ${TOKEN}`, origin: 'http://evil.example' },
    { authorization: `Bearer ${TOKEN}`, 'sec-fetch-site': 'same-site' },
  ];
  for (const headers of forged) assert.equal((await fetch(`${base}/api/outbound/start`, { method: 'POST', headers })).status, 403, JSON.stringify(Object.keys(headers)));
  // From a page of another origin in the same browser: the cookie is not even sent.
  const site = http.createServer((_req, res) => res.end('<!doctype html><title>elsewhere</title>'));
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => site.close(() => resolve())));
  const evil = await browser.newPage();
  await evil.goto(`http://localhost:${(site.address() as AddressInfo).port}/`);
  assert.equal(await evil.evaluate(`fetch(${JSON.stringify(`${base}/api/outbound/start`)}, { method: 'POST', mode: 'no-cors', credentials: 'include' }).then(function () { return 'sent'; }, function () { return 'blocked'; })`), 'sent');
  await evil.close();
  await srv.waitForLog((l) => l.event === 'admin-forgery-refused' && l.why === 'Sec-Fetch-Site is "cross-site", not same-origin');
  assert.equal(srv.logs.filter((l) => l.event === 'outbound-started').length, 0);
  assert.equal(sink.connections, 0);

  // Start: the queued mail is tried at once and delivered.
  await page.click('#outbound-start');
  await confirm(/^Start outbound mail again\?/);
  await page.click('#confirm-yes');
  await page.waitForSelector('#outbound-flowing:not([hidden])');
  const got = await sink.waitForMessages(3);
  assert.deepEqual(got.map((m) => m.rcpts.join(',')).sort(), ['friend@example.net', 'v1@example.net', 'v2@example.net']);
  assert.match(await metrics(), /^mailward_outbound_stopped 0$/m);
  await srv.waitForLog((l) => l.event === 'outbound-started');
  await page.screenshot({ path: path.join(artifacts(), 'console-started.png'), fullPage: true });
  assert.deepEqual(failures, []);
});
