// Real mail clients log in on the submission ports whatever name they give in EHLO: with the
// shipped examples/mailward.yaml (helo: requireFqdn, our own names refused), swaks and Python's
// smtplib saying DESKTOP-AB12CD (Outlook), localhost (scripts) and the server's own host name
// (webmail on the same machine) get 250, log in and send on 587 (STARTTLS) and 465 (implicit
// TLS). On the MX port the same names are still refused as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/server.ts';
import { missingClients, smtplib, swaks, type ClientRun } from '../harness/clients.ts';
import type { TestContext } from 'node:test';

// Skipped where the clients are missing, except in CI (MAILWARD_REQUIRE_ALL_TESTS=1), where a
// skip would hide a lost test.
const MISSING = missingClients();
const REQUIRE_ALL = process.env.MAILWARD_REQUIRE_ALL_TESTS === '1';
const skip = MISSING !== undefined && !REQUIRE_ALL ? MISSING : false;

const ALICE = ['alice@example.org', 'alice password 1'] as const;

/** examples/mailward.yaml as shipped, on loopback port 0, with a DNS server on loopback. */
async function exampleServer(t: TestContext): Promise<TestServer> {
  const example = parse(readFileSync(new URL('../../examples/mailward.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;
  // Machine-specific keys only: the data folder, the ports, the certificate (self-signed made
  // in the data folder) and the outside world (DNS on loopback, no smarthost).
  delete example.dataDir;
  delete example.tls;
  delete example.delivery;
  const dns = await startDns(t, { 'zen.spamhaus.org': {}, 'bl.spamcop.net': {}, 'example.org': {} });
  const listeners = example.listeners as Record<string, Record<string, unknown>>;
  for (const l of Object.values(listeners)) Object.assign(l, { host: '127.0.0.1', port: 0 });
  return startServer(t, {
    users: [ALICE, ['bob@example.org', 'bob password 12']],
    config: { ...example, dns: { servers: [dns.address], timeout: '2s' }, log: { level: 'debug', format: 'json' } },
  });
}

const show = (r: ClientRun): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

test('submission: swaks and smtplib with EHLO DESKTOP-AB12CD, localhost and our own name log in and send on 587 and 465', { skip }, async (t) => {
  if (MISSING) assert.fail(`MAILWARD_REQUIRE_ALL_TESTS=1 but the client test cannot run: ${MISSING}`);
  const srv = await exampleServer(t);
  const own = srv.config.hostname;
  assert.equal(own, 'mail.example.org');
  let sent = 0;
  for (const ehlo of ['DESKTOP-AB12CD', 'localhost', own]) {
    for (const [listener, tls] of [['submission', 'starttls'], ['submissions', 'implicit']] as const) {
      for (const [name, client] of [['swaks', swaks], ['smtplib', smtplib]] as const) {
        const subject = `${name} ${listener} ${ehlo}`;
        const r = await client(t, { port: srv.port(listener), tls, ehlo, user: ALICE[0], password: ALICE[1], from: ALICE[0], to: 'bob@example.org', subject });
        assert.equal(r.code, 0, `${subject}: ${show(r)}`);
        if (name === 'swaks') assert.match(r.stdout, new RegExp(` [-~]> EHLO ${ehlo}\\n *<[-~]  250-`), subject);
        else assert.match(r.stdout, /^EHLO 250 /m, subject);
        sent++;
        const box = await srv.waitForMail('bob@example.org', sent, 20_000);
        // Maildir names order by time, not within one second: look for it among all.
        assert.ok(box.some((m) => m.includes(`\r\nSubject: ${subject}\r\n`)), `${subject} not delivered`);
      }
    }
  }
  assert.equal(srv.logs.filter((l) => l.event === 'rejected' && l.stage === 'helo').length, 0);
});

test('MX port: the shipped HELO rules still refuse those names', async (t) => {
  const srv = await exampleServer(t);
  for (const [ehlo, expected] of <Array<[string, string]>>[['DESKTOP-AB12CD', '504 5.5.2'], ['localhost', '504 5.5.2'], ['mail.example.org', '550 5.7.1'], ['example.org', '550 5.7.1'], ['[203.0.113.25]', '550 5.7.1']]) {
    const c = await dial(srv.port('mx'));
    await c.expect('220');
    await c.say(`EHLO ${ehlo}`).expect(expected);
    c.close();
  }
  // A submission client that has not logged in is not judged by its name either.
  const c = await dial(srv.port('submissions'), { tls: true });
  await c.expect('220');
  await c.say('EHLO mail.example.org').expect('250');
  await c.say('MAIL FROM:<alice@example.org>').expect('530 5.7.0');
  c.close();
});
