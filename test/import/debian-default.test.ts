// A default Debian install ("Internet Site"): local users from /etc/passwd, /etc/aliases, and
// Debian's mynetworks with loopback behind permit_mynetworks — the trap, named and not copied.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forTest, ids, importFixture, rcptCode, start } from './helpers.ts';

test('import postfix: Debian default — local users and aliases accepted, unknown and relay refused, the loopback trap named', async (t) => {
  const imp = await importFixture(t, 'debian-default');
  const r = imp.result;
  assert.deepEqual(imp.written.domains, ['mail.example.org', 'example.org']);
  assert.equal(imp.written.relay, undefined, 'nothing from mynetworks is trusted');
  const trap = r.plan.report.items.find((i) => i.id === 'mynetworks-loopback');
  assert.ok(trap && trap.level === 'error', 'the report names the loopback trap as an error');
  assert.match(trap.fix ?? '', /tunnel.*127\.0\.0\.1.*open relay/);
  assert.match(trap.postfix, /\[::ffff:127\.0\.0\.0\]\/104/);
  assert.ok(ids(r).includes('mbox'), 'mbox delivery is reported as untranslated');
  assert.equal(r.code, 0, r.text);

  const srv = await start(t, imp, forTest(imp));
  const mx = srv.port('mx');
  // Postfix: local(8) users (uid >= 1000) in every mydestination domain, aliases(5) likewise.
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'alice@example.org'), 250);
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'bob@mail.example.org'), 250);
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'postmaster@example.org'), 250);
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'alice+lists@example.org'), 250, 'recipient_delimiter = +');
  // Postfix: 550 5.1.1 User unknown in local recipient table.
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'nobody-here@example.org'), 550);
  // Postfix would relay this one (the client is 127.0.0.1, in mynetworks): the unsafe case the report names.
  assert.equal(await rcptCode(mx, 'someone@sender.example', 'victim@elsewhere.example'), 554);
});
