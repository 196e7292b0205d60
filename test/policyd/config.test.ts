// The `policyd` config section and its check lists: each bad config paired with the exact error
// an operator sees (the setting, the value, the fix), and the defaults of an empty section.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { createPolicyService } from '../../src/app/policyd.ts';
import { buildConfig } from '../../src/config/load.ts';
import { parseListenAddress, parsePolicyd } from '../../src/config/policyd-schema.ts';

async function compileError(t: TestContext, policyd: unknown, checks: Record<string, unknown> = {}): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-policyd-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = buildConfig({ domains: ['example.org'], dataDir: dir, checks }, 'mailward.yaml', dir);
  try {
    const s = await createPolicyService(config, parsePolicyd(policyd, 'mailward.yaml'));
    await s.close();
  } catch (err) {
    return (err as Error).message;
  }
  return 'no error';
}

test('policyd config: an empty section gives the documented defaults', () => {
  const p = parsePolicyd(undefined, 'mailward.yaml');
  assert.deepEqual(p.listen, ['tcp:127.0.0.1:10040']);
  assert.deepEqual(p.pipeline, { RCPT: ['spf', 'greylist'] });
  assert.deepEqual(p.actions, { permit: 'DUNNO', reject: 'reply', defer: 'reply', discard: 'DISCARD', checks: {} });
  assert.equal(p.socketMode, '0660');
  assert.deepEqual(p.clients, ['127.0.0.0/8', '::1']);
  assert.equal(p.listenerKind, 'mx');
  assert.deepEqual(p.limits, { maxLineLength: 8192, maxAttributes: 128, maxConnections: 1000, idleTimeout: 600_000 });
  // A pipeline that is given replaces the default as a whole.
  assert.deepEqual(parsePolicyd({ pipeline: { MAIL: ['sender-login'] } }, 'x').pipeline, { MAIL: ['sender-login'] });
});

test('policyd config: schema errors name the setting, the value and the fix', () => {
  const err = (input: unknown) => {
    try {
      parsePolicyd(input, 'mailward.yaml');
      return 'no error';
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.equal(
    err({ pipeline: { RCTP: ['greylist'] } }),
    'config error at policyd.pipeline: unknown key "RCTP" (in mailward.yaml). Fix: use the protocol states CONNECT, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY, ETRN',
  );
  assert.equal(
    err({ listen: ['tcp:mail.example.org:10040'] }),
    'config error at policyd.listen[0]: "tcp:mail.example.org:10040" must name an IP address (or localhost), not a host name (in mailward.yaml). Fix: write tcp:127.0.0.1:10040, tcp:[::1]:10040 or unix:/var/spool/postfix/private/mailward',
  );
  assert.equal(
    err({ actions: { defer: 'TEMPFAIL' } }),
    'config error at policyd.actions.defer: "TEMPFAIL" is not allowed (in mailward.yaml). Fix: use one of "reply", "REJECT", "DEFER", "DEFER_IF_PERMIT", "DEFER_IF_REJECT", "HOLD", "DISCARD"',
  );
  assert.equal(err({ socketmode: '0666' }), 'config error at policyd: unknown key "socketmode" (in mailward.yaml). Fix: remove it or correct the spelling; see docs/postfix-policy.md');
});

test('policyd config: listen addresses', () => {
  assert.deepEqual(parseListenAddress('tcp:127.0.0.1:10040'), { kind: 'tcp', host: '127.0.0.1', port: 10040 });
  assert.deepEqual(parseListenAddress('inet:[::1]:10040'), { kind: 'tcp', host: '::1', port: 10040 });
  assert.deepEqual(parseListenAddress('tcp:localhost:10040'), { kind: 'tcp', host: '127.0.0.1', port: 10040 });
  assert.deepEqual(parseListenAddress('unix:/var/spool/postfix/private/mailward'), { kind: 'unix', path: '/var/spool/postfix/private/mailward' });
  assert.equal(parseListenAddress('unix:private/mailward'), '"unix:private/mailward" needs an absolute socket path');
  assert.equal(parseListenAddress('tcp:127.0.0.1:70000'), '"tcp:127.0.0.1:70000" has a port above 65535');
  assert.equal(parseListenAddress('127.0.0.1:10040'), '"127.0.0.1:10040" is not a listen address');
});

test('policyd config: placement errors per protocol state', async (t) => {
  assert.equal(
    await compileError(t, { pipeline: { DATA: ['greylist'] } }),
    'config error at policyd.pipeline.DATA[0]: check "greylist" does not work at protocol state DATA (it serves the rcpt stage) (in mailward.yaml). Fix: place it under: RCPT, VRFY',
  );
  assert.equal(
    await compileError(t, { pipeline: { 'END-OF-MESSAGE': ['dkim-dmarc'] } }),
    'config error at policyd.pipeline.END-OF-MESSAGE[0]: check "dkim-dmarc" reads the message content, which Postfix does not send to a policy service (in mailward.yaml). Fix: remove it here; run it as a milter or in Mailward\'s own server',
  );
  assert.match(await compileError(t, { pipeline: { 'END-OF-MESSAGE': ['uribl'] } }), /^config error at policyd\.pipeline\.END-OF-MESSAGE\[0\]: check "uribl" reads the message content/);
  assert.match(await compileError(t, { pipeline: { RCPT: ['spf', 'postgrey'] } }), /^config error at policyd\.pipeline\.RCPT\[1\]: there is no check named "postgrey" \(in mailward\.yaml\)\. Fix: use one of: recipient, permit-login, sender-login, /);
  // The checks' own options are validated as for the server, under checks.<name>.
  assert.match(await compileError(t, { pipeline: { RCPT: ['greylist'] } }, { greylist: { delay: 'soon' } }), /^config error at checks\.greylist\.delay: "soon" is not a duration/);
  // sender-login (mail, data) fits MAIL, RCPT, DATA and END-OF-MESSAGE.
  assert.equal(await compileError(t, { pipeline: { MAIL: ['sender-login'], RCPT: ['sender-login'], DATA: ['sender-login'], 'END-OF-MESSAGE': ['sender-login'] } }), 'no error');
});
