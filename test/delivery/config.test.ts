// The `delivery:` config section: bad routes, smarthosts and password sources each produce an
// error naming the key, the value and the fix; the password is read from a file or an environment
// variable at start and never appears in the config or the log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { buildDelivery } from '../../src/app/delivery.ts';
import { Spool } from '../../src/queue/spool.ts';
import { createResolver } from '../../src/app/compose.ts';
import { captureLog, tempDir } from '../queue/helpers.ts';

function errorOf(delivery: unknown): string {
  try {
    buildConfig({ delivery }, 'test.yaml', '/tmp');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message;
  }
  return 'no error';
}

test('delivery config: each mistake names the key, the value and the fix', () => {
  assert.equal(
    errorOf({ routes: { 'example.com': 'smarthost:sse' }, smarthosts: { ses: { host: 'email-smtp.example', tls: 'starttls' } } }),
    'config error at delivery.routes.example.com: "smarthost:sse" names no smarthost (in test.yaml). Fix: use one of smarthost:ses, or define delivery.smarthosts.sse',
  );
  assert.equal(errorOf({ routes: { '*': 'relay' } }), 'config error at delivery.routes.*: "relay" is not a route (in test.yaml). Fix: write local, mx, or smarthost:<name> naming an entry of delivery.smarthosts');
  assert.equal(errorOf({ routes: { 'bad domain': 'mx' } }), 'config error at delivery.routes.bad domain: "bad domain" is not a domain pattern (in test.yaml). Fix: write a domain ("example.com"), its subdomains (".example.com") or "*" for every other domain');
  assert.equal(errorOf({ smarthosts: { ses: { host: 'h', tls: 'none' } } }), 'config error at delivery.smarthosts.ses.tls: "none" is not allowed (in test.yaml). Fix: use one of "implicit", "starttls"');
  assert.equal(
    errorOf({ smarthosts: { ses: { host: 'h', tls: 'implicit', auth: { user: 'u' } } } }),
    'config error at delivery.smarthosts.ses.auth.passwordFile: no password source given (in test.yaml). Fix: give exactly one of passwordFile (a file holding only the password) or passwordEnv (the name of an environment variable); never the password itself',
  );
  assert.match(errorOf({ smarthosts: { ses: { host: 'h', tls: 'implicit', auth: { user: 'u', password: 'x' } } } }), /^config error at delivery\.smarthosts\.ses\.auth\.password: unknown key "password"/);
  assert.equal(errorOf({ mx: { port: 0 } }), 'config error at delivery.mx.port: 0 is too small (minimum 1) (in test.yaml). Fix: use at least 1');
  const ok = buildConfig({ delivery: { routes: { '.corp.example': 'smarthost:office' }, smarthosts: { office: { host: 'relay.corp.example', tls: 'starttls', auth: { user: 'mx', passwordEnv: 'RELAY_PW' } } } } }, 't', '/tmp');
  assert.deepEqual(ok.delivery.mx, { port: 25, concurrencyPerDomain: 10 });
  assert.deepEqual(ok.delivery.bounces, { delayWarnings: false, delayWarningAfter: 4 * 3_600_000 });
  assert.equal(ok.delivery.smarthosts.office!.maxConnections, 10);
});

test('delivery config: the password comes from the file or the variable named, and is refused by name when missing', async (t) => {
  const dir = await tempDir(t);
  const spool = await Spool.open(join(dir, 'spool'), { log: captureLog().log, fsync: false });
  t.after(() => spool.close());
  const build = (auth: Record<string, string>) => {
    const config = buildConfig({ dataDir: dir, delivery: { routes: { '*': 'smarthost:relay' }, smarthosts: { relay: { host: '127.0.0.1', tls: 'implicit', auth: { user: 'u', ...auth } } } } }, join(dir, 'mailward.yaml'), dir);
    const cap = captureLog();
    buildDelivery({ config, log: cap.log, spool, store: undefined as never, dns: createResolver(config) });
    return cap;
  };
  assert.throws(
    () => build({ passwordFile: 'missing.pass' }),
    (e: unknown) => e instanceof ConfigError && e.message === `config error at delivery.smarthosts.relay.auth.passwordFile: cannot read "${join(dir, 'missing.pass')}": ENOENT (in ${join(dir, 'mailward.yaml')}). Fix: create the file holding only the password (chmod 600), or correct the path`,
  );
  assert.throws(
    () => build({ passwordEnv: 'MAILWARD_TEST_UNSET_VARIABLE' }),
    (e: unknown) => e instanceof ConfigError && e.message.startsWith('config error at delivery.smarthosts.relay.auth.passwordEnv: the environment variable MAILWARD_TEST_UNSET_VARIABLE is not set'),
  );
  writeFileSync(join(dir, 'relay.pass'), 'hunter2 but longer\n', { mode: 0o644 });
  const cap = build({ passwordFile: 'relay.pass' });
  assert.deepEqual(cap.events('secret-file-mode').map((l) => l.file), [join(dir, 'relay.pass')], 'a password file others can read is warned about');
  assert.ok(!JSON.stringify(cap.lines).includes('hunter2'));
});
