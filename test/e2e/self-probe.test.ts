// The relay self-probe (selfProbe): after a reload the server runs relay-test against its own
// listeners. A safe config logs "no relay possible" for each; a reload that trusts loopback makes
// the probe's tricks pass, and the alarm goes out on the guard's channels: the log, the webhook
// and the postmaster's mailbox.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startServer, testConfig } from '../harness/server.ts';

test('self-probe: a reload that trusts loopback raises the open-relay alarm (log, webhook, postmaster)', async (t) => {
  const hooks: Array<Record<string, unknown>> = [];
  let hooked: () => void = () => undefined;
  const hook = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      hooks.push(JSON.parse(body) as Record<string, unknown>);
      res.end('ok');
      hooked();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  t.after(() => hook.close());
  const checks = { 'outbound-guard': { alerts: { webhook: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts` } } };
  const srv = await startServer(t, { users: [['postmaster@example.org', 'pm pass']], config: { checks } });

  // A reload of the safe config: each listener is probed and refuses every trick.
  srv.server.reload(testConfig(srv.dataDir, { checks }));
  for (const name of ['mx', 'submission', 'submissions']) {
    const line = await srv.waitForLog((l) => l.event === 'self-probe' && l.target === name);
    assert.equal(line.openRelay, false, JSON.stringify(line));
    assert.ok(Number(line.refused) > 0);
  }
  assert.ok(!srv.logs.some((l) => l.event === 'breaker'), 'no alarm for a safe config');

  // The mistake: loopback trusted (acknowledged, as an operator behind a tunnel might).
  srv.server.reload(testConfig(srv.dataDir, { checks, relay: { trustedNetworks: ['127.0.0.1/32'] } }));
  const alarm = await srv.waitForLog((l) => l.event === 'breaker' && l.state === 'alarm');
  assert.equal(alarm.breaker, 'relay-self-probe');
  assert.match(String(alarm.reason), /OPEN RELAY: relay tricks were accepted without a login: mx \(127\.0\.0\.1:\d+\) accepted /);
  assert.match(String(alarm.fix), /relay\.trustedNetworks/);
  const open = srv.logs.find((l) => l.event === 'self-probe' && l.target === 'mx' && l.openRelay === true);
  assert.ok(open && Array.isArray(open.accepted) && open.accepted.length > 0, 'the log names the accepted tricks');

  if (hooks.length === 0) await new Promise<void>((r) => (hooked = r));
  assert.equal(hooks[0]!.type, 'alarm');
  assert.match(String(hooks[0]!.text), /ALARM relay-self-probe: OPEN RELAY/);
  const [mail] = await srv.waitForMail('postmaster@example.org');
  assert.match(mail!, /^Subject: \[mailward mx\.example\.org\] ALARM relay-self-probe: OPEN RELAY/m);
});

test('self-probe: on its schedule, without a reload, and off when selfProbe.enabled is false', async (t) => {
  const open = { relay: { trustedNetworks: ['127.0.0.1/32'] } };
  const srv = await startServer(t, { config: { ...open, selfProbe: { interval: '1s' } } });
  const alarm = await srv.waitForLog((l) => l.event === 'breaker' && l.state === 'alarm');
  assert.equal(alarm.why, 'schedule');
  const off = await startServer(t, { config: { ...open, selfProbe: { enabled: false } } });
  off.server.reload(testConfig(off.dataDir, { ...open, selfProbe: { enabled: false } }));
  await off.waitForLog((l) => l.event === 'reload' && l.applied === true);
  assert.ok(!off.logs.some((l) => l.event === 'self-probe'), 'no probe when it is off');
});
