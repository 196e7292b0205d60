// The submission side of every imported fixture: on each listener that takes logins (submission,
// smtps, and an mx port with smtpd_sasl_auth_enable), a user of the import, logged in with AUTH
// PLAIN over TLS, may send to a foreign domain as herself; she may not send as another mailbox or
// a foreign address (Postfix's reject_sender_login_mismatch with smtpd_sender_login_maps, and
// Mailward's sender-login whatever the Postfix config said — the report names that difference);
// without a login the same listener refuses foreign mail. Logins are checked where the imported
// config says: Mailward's own user list, or a real Dovecot for auth.backend: dovecot.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { authPlain } from '../harness/auth.ts';
import { dial, type Dialog } from '../harness/dial.ts';
import { dovecotInstalled, startDovecot } from '../harness/dovecot.ts';
import type { TestServer } from '../harness/server.ts';
import { addUser, FIXTURES, forTest, importFixture, obj, setPassword, start, type Imported } from './helpers.ts';

interface Listener {
  kind: 'mx' | 'submission' | 'submissions';
  auth?: boolean;
}

const PASSWORD = 'correct horse battery staple';
const FOREIGN = 'friend@elsewhere.example';

/** Listeners of the written config that offer AUTH (Mailward's defaults: on for submission ports, off on mx). */
function loginListeners(imp: Imported): Array<[string, Listener]> {
  return Object.entries(obj(imp.written.listeners) as Record<string, Listener>).filter(([, l]) => (l.kind === 'mx' ? l.auth === true : l.auth !== false));
}

/** Connected, TLS up (implicit on submissions, STARTTLS elsewhere), EHLO said. */
async function open(port: number, l: Listener): Promise<Dialog> {
  const implicit = l.kind === 'submissions';
  const c = await dial(port, { tls: implicit });
  await c.expect('220');
  await c.say('EHLO laptop.example').expect('250');
  if (!implicit) {
    await c.say('STARTTLS').expect('220');
    await c.startTls();
    await c.say('EHLO laptop.example').expect('250');
  }
  return c;
}

/** MAIL FROM, then RCPT TO if MAIL was accepted: the first refusal's code, or the RCPT's 250. */
async function transaction(c: Dialog, from: string, to: string): Promise<number> {
  const mail = await c.say(`MAIL FROM:<${from}>`).read();
  if (mail.code !== 250) return mail.code;
  const rcpt = (await c.say(`RCPT TO:<${to}>`).read()).code;
  await c.say('RSET').expect('250');
  return rcpt;
}

/** The login of the test: the import's first mailbox, or one added (as mailward user add does) when it made none. */
async function loginUser(imp: Imported, srv: TestServer): Promise<string> {
  const first = imp.result.plan.users[0];
  if (first) {
    await setPassword(imp, srv, first, PASSWORD);
    return first;
  }
  const address = `tester@${(imp.written.domains as string[])[0]}`;
  await addUser(srv, address, PASSWORD);
  return address;
}

/**
 * A fixture whose Postfix took no logins (no submission service, no smtpd_sasl_auth_enable): the
 * imported server must take none either, on any port, and refuse foreign mail on every listener.
 */
async function noLoginOffered(t: TestContext, imp: Imported, name: string): Promise<void> {
  const srv = await start(t, imp, forTest(imp));
  const all = Object.entries(obj(imp.written.listeners) as Record<string, Listener>);
  assert.ok(all.length > 0, `${name}: the import wrote at least one listener`);
  for (const [lname, l] of all) {
    const what = `${name}: listener ${lname} (${l.kind})`;
    const c = await open(srv.port(lname), l);
    try {
      const ehlo = await c.say('EHLO laptop.example').read();
      assert.equal(ehlo.code, 250, what);
      assert.ok(!/^AUTH\b/m.test(ehlo.text), `${what}: no AUTH in EHLO under TLS, as the old server offered none:\n${ehlo.text}`);
      const auth = await c.say(authPlain('someone@sender.example', PASSWORD)).read();
      assert.ok(auth.code >= 500 && auth.code !== 535, `${what}: AUTH is refused as not offered (${auth.code}), not checked`);
      assert.ok((await transaction(c, 'someone@sender.example', FOREIGN)) >= 500, `${what}: foreign mail is refused`);
    } finally {
      c.close();
    }
  }
}

for (const name of readdirSync(FIXTURES).sort()) {
  test(`submission with a login against the imported ${name}: the login relays as itself only; without it, no foreign mail`, async (t) => {
    const imp = await importFixture(t, name);
    const listeners = loginListeners(imp);
    if (listeners.length === 0) return noLoginOffered(t, imp, name);
    const dovecotAuth = obj(imp.written.auth).backend === 'dovecot';
    if (dovecotAuth && !dovecotInstalled() && process.env.MAILWARD_REQUIRE_ALL_TESTS !== '1') return t.skip('auth.backend dovecot, and dovecot-core is not installed');
    const users = imp.result.plan.users;
    const login = users[0] ?? `tester@${(imp.written.domains as string[])[0]}`;
    const dovecot = dovecotAuth ? await startDovecot(t, [{ address: login, password: PASSWORD }]) : undefined;
    const srv = await start(
      t,
      imp,
      forTest(imp, (c) => {
        if (dovecot) obj(obj(c.auth).dovecot).socket = dovecot.authSocket;
      }),
    );
    if (!dovecot) assert.equal(await loginUser(imp, srv), login);
    const sendAs = (obj(obj(imp.written.checks)['sender-login']).sendAs as Record<string, string[]> | undefined)?.[login] ?? [];
    const other = users.find((u) => u !== login && !sendAs.includes(u) && !sendAs.includes(u.slice(u.indexOf('@'))));
    const loginMaps = imp.result.plan.params.some((p) => p.name === 'smtpd_sender_login_maps' && p.value !== '');
    for (const [lname, l] of listeners) {
      const port = srv.port(lname);
      const what = `${name}: listener ${lname} (${l.kind})`;
      const c = await open(port, l);
      try {
        await c.say(authPlain(login, PASSWORD)).expect('235');
        assert.equal(await transaction(c, login, FOREIGN), 250, `${what}: ${login}, logged in, sends to a foreign domain`);
        // smtpd_sender_login_maps: the addresses it gives this login are still usable (checks.sender-login.sendAs).
        for (const a of sendAs.filter((x) => !x.startsWith('@')).slice(0, 2)) assert.equal(await transaction(c, a, FOREIGN), 250, `${what}: ${login} may send as ${a} (smtpd_sender_login_maps)`);
        if (other) assert.ok((await transaction(c, other, FOREIGN)) >= 550, `${what}: ${login} may not send as the mailbox ${other}${loginMaps ? ' (smtpd_sender_login_maps)' : ''}`);
        assert.ok((await transaction(c, 'ceo@forged.example', FOREIGN)) >= 550, `${what}: ${login} may not send as a foreign address`);
      } finally {
        c.close();
      }
      const anon = await open(port, l);
      try {
        assert.ok((await transaction(anon, 'someone@sender.example', FOREIGN)) >= 500, `${what}: without a login, foreign mail is refused`);
        assert.ok((await transaction(anon, login, FOREIGN)) >= 500, `${what}: without a login, not even as a local sender`);
      } finally {
        anon.close();
      }
    }
    if (!loginMaps) {
      assert.ok(imp.result.plan.report.items.some((i) => i.id === 'sender-login-unrestricted'), `${name}: Postfix let any login send as any address; the report names the difference`);
    }
  });
}
