// Alerts: the webhook POST (retried on a 5xx, given up on a 4xx with the URL's token kept out of
// the log), the postmaster outbox drained once even by two dispatchers (two nodes), and the
// postmaster mail queued in a real spool, routed through the directory's alias; the mail's text
// on held mail (how many, and the commands to look at, send or delete it).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Alerter, enqueueAlertMail, startAlertDispatcher, type AlertMailer, type GuardAlert } from '../../src/guard/alerts.ts';
import { spoolAlertMailer } from '../../src/guard/mailer.ts';
import { Spool } from '../../src/queue/spool.ts';
import { makeEnv } from '../checks/env.ts';
import { startWebhook } from './helpers.ts';

const alert = (name: string, at: number): GuardAlert => ({ state: 'open', name, kind: 'baseline', reason: '31 relayed recipients in the last hour, limit 30', figures: { rate: 31, limit: 30 }, at });

test('webhook: a 5xx is retried; a 4xx is given up and logged without the URL token', async (t) => {
  const hook = await startWebhook(t);
  const te = await makeEnv(t);
  const alerter = new Alerter({ log: te.env.log, store: te.store, clock: te.clock, hostname: 'mx.example.org', mail: false, webhook: { url: hook.url, timeoutMs: 2000 } });
  hook.status = 500;
  await alerter.raise(alert('login:a@example.org', te.clock()));
  await hook.waitFor(1);
  hook.status = 200;
  await alerter.idle();
  assert.equal(hook.received.length, 2);
  assert.equal(te.logs.filter((l) => l.event === 'alert-failed').length, 0);
  hook.status = 404;
  await alerter.raise(alert('login:b@example.org', te.clock()));
  await alerter.idle();
  assert.equal(hook.received.length, 3);
  const failed = te.logs.filter((l) => l.event === 'alert-failed');
  assert.deepEqual(failed.map((l) => [l.channel, l.webhook, l.breaker, l.err]), [['webhook', new URL(hook.url).origin, 'login:b@example.org', 'HTTP 404']]);
  assert.ok(!JSON.stringify(te.logs).includes('secret-token'));
});

test('outbox: each alert is mailed once to the postmaster, even with two dispatchers on one store', async (t) => {
  const te = await makeEnv(t);
  const mails: Array<[string, string]> = [];
  const mailer: AlertMailer = { send: async (subject, text) => void mails.push([subject, text]) };
  let failing = true;
  const flaky: AlertMailer = {
    send: async (s, x) => {
      if (failing) throw new Error('spool full');
      mails.push([s, x]);
    },
  };
  const log = pino({ level: 'silent' });
  const a = startAlertDispatcher({ store: te.store, mailer: flaky, log, hostname: 'mx.example.org', clock: te.clock, intervalMs: 60_000 });
  const b = startAlertDispatcher({ store: te.store, mailer, log, hostname: 'mx.example.org', clock: te.clock, intervalMs: 60_000 });
  t.after(() => Promise.all([a.stop(), b.stop()]));
  await enqueueAlertMail(te.store, alert('login:alice@example.org', te.clock()), te.clock());
  // The first node fails to queue the mail and gives its claim back; the second sends it.
  assert.equal(await a.tick(), 0);
  assert.equal(await b.tick(), 1);
  failing = false;
  assert.equal(await a.tick(), 0);
  assert.equal(await b.tick(), 0);
  assert.equal(mails.length, 1);
  const [subject, text] = mails[0]!;
  assert.equal(subject, '[mailward mx.example.org] outbound breaker open: login:alice@example.org');
  assert.match(text, /^The outbound breaker "login:alice@example\.org" of mx\.example\.org tripped \(baseline\)\.\n\nWhy: 31 relayed recipients in the last hour, limit 30\n/);
  assert.match(text, /\nReopen when safe: {4}mailward guard release login:alice@example\.org\n/);
  // An alert raised late yesterday (by the clock) is still found today.
  await enqueueAlertMail(te.store, alert('sender:x@example.org', te.clock() - 86_400_000), te.clock() - 86_400_000);
  assert.equal(await a.tick(), 1);
  assert.equal(mails.length, 2);
});

test('postmaster mail: queued in the spool with the null sender, routed through the postmaster alias', async (t) => {
  const te = await makeEnv(t);
  const dir = await mkdtemp(join(tmpdir(), 'mailward-guard-spool-'));
  const spool = await Spool.open(dir, { log: pino({ level: 'silent' }), fsync: false });
  t.after(async () => {
    await spool.close();
    await rm(dir, { recursive: true, force: true });
  });
  const directory = te.env.directory as unknown as { addUser(a: string, p: string): Promise<void>; addAlias(a: string, targets: string[]): void };
  await directory.addUser('admin@example.org', 'admin password 1');
  directory.addAlias('postmaster@example.org', ['admin@example.org']);
  const mailer = spoolAlertMailer({ spool, hostname: 'mx.example.org', to: 'postmaster@example.org', directory: te.env.directory, clock: te.clock });
  await mailer.send('[mailward mx.example.org] outbound breaker open: global', 'All outbound mail is held.\nRelease: mailward guard release global');
  const queued = [];
  for await (const m of spool.list()) queued.push(m);
  assert.equal(queued.length, 1);
  const env = queued[0]!.envelope;
  assert.deepEqual([env.mailFrom, env.recipients, env.noBounce, env.client.listener], ['', [{ address: 'postmaster@example.org', mailbox: 'admin@example.org', transport: 'local' }], 'outbound guard alert', 'outbound-guard']);
  const chunks: Buffer[] = [];
  for await (const c of spool.openBody(env.id)) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  assert.match(text, /^From: Mailward outbound guard <mailer-daemon@mx\.example\.org>\r\nTo: <postmaster@example\.org>\r\nSubject: \[mailward mx\.example\.org\] outbound breaker open: global\r\n/);
  assert.match(text, /\r\nAuto-Submitted: auto-generated\r\n\r\nAll outbound mail is held\.\r\nRelease: mailward guard release global\r\n$/);
  // A postmaster address nobody receives is an error the dispatcher logs and retries.
  const nowhere = spoolAlertMailer({ spool, hostname: 'mx.example.org', to: 'nobody@example.org', directory: te.env.directory });
  await assert.rejects(nowhere.send('s', 't'), { message: 'nobody@example.org has no mailbox or alias; create one (the guard\'s alerts go there)' });
});

test('alert text: the global breaker says all outbound mail is held in the queue, how many messages are on hold, and the exact commands', async (t) => {
  const te = await makeEnv(t);
  const mails: string[] = [];
  const held = 7;
  const d = startAlertDispatcher({ store: te.store, mailer: { send: async (_s, x) => void mails.push(x) }, log: pino({ level: 'silent' }), hostname: 'mx.example.org', clock: te.clock, intervalMs: 60_000, held: async () => held });
  t.after(() => d.stop());
  await enqueueAlertMail(te.store, { state: 'open', name: 'global', kind: 'manual', reason: 'opened by hand', figures: {}, at: te.clock() }, te.clock());
  assert.equal(await d.tick(), 1);
  assert.equal(
    mails[0],
    [
      'The outbound breaker "global" of mx.example.org tripped (manual).',
      '',
      'Why: opened by hand',
      `When: ${new Date(te.clock()).toISOString()}`,
      '',
      'All outbound mail is held in the queue: relayed mail is still accepted, and each queued message is put on hold (the hold area) when its delivery comes up; local delivery carries on.',
      '7 message(s) are on hold now.',
      '',
      'See what happened:   mailward guard status',
      'See the held mail:   mailward queue list --state held',
      'Reopen when safe:    mailward guard release global',
      "  New mail then flows again; the mail held meanwhile stays on hold (it is probably the attack's).",
      'Send held mail:      mailward queue release ID...   (or --sender ADDRESS, or --all)',
      'Delete held mail:    mailward queue delete --state held   (or ID...)',
    ].join('\n'),
  );
  // A count that cannot be had is left out; the commands stay.
  const failing = startAlertDispatcher({ store: te.store, mailer: { send: async (_s, x) => void mails.push(x) }, log: pino({ level: 'silent' }), hostname: 'mx.example.org', clock: te.clock, intervalMs: 60_000, held: () => Promise.reject(new Error('no server')) });
  t.after(() => failing.stop());
  await enqueueAlertMail(te.store, alert('sender:spam@example.org', te.clock()), te.clock());
  assert.equal(await failing.tick(), 1);
  assert.equal(mails.length, 2);
  assert.ok(!mails[1]!.includes('on hold now'));
  assert.match(mails[1]!, /\nNew outbound mail from sender:spam@example\.org is refused with a 4xx, and its queued outbound mail is put on hold \(the hold area\) at once; local delivery carries on\.\n/);
  assert.match(mails[1]!, /\nDelete held mail: {4}mailward queue delete --state held --sender spam@example\.org {3}\(or ID\.\.\.\)$/);
});
