// The policy service on a unix socket: requests answered as over TCP, the configured file mode and
// group, a stale socket left by a dead process replaced, a live one or a regular file refused,
// and the socket removed on close.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { policyClient, rcptRequest, startPolicyd } from './helpers.ts';

function tempDir(t: TestContext): string {
  const d = mkdtempSync(path.join(tmpdir(), 'mailward-policyd-sock-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const policy = {
  config: { checks: { 'sender-access': { entries: { 'rej@x.example': 'reject' } } } },
  policyd: { pipeline: { RCPT: ['sender-access'] } },
};

test('policyd on a unix socket: mode 0660 by default, many requests per connection, removed on close', async (t) => {
  const sock = path.join(tempDir(t), 'policy.sock');
  const p = await startPolicyd(t, { ...policy, listen: [{ kind: 'unix', path: sock }] });
  assert.deepEqual(p.server.addresses, [{ kind: 'unix', path: sock }]);
  const st = statSync(sock);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o660);
  const c = await policyClient(sock);
  assert.equal(await c.ask(rcptRequest({ sender: 'rej@x.example' })), '554 5.7.1 Access denied');
  assert.equal(await c.ask(rcptRequest()), 'DUNNO');
  const others = await Promise.all(Array.from({ length: 8 }, () => policyClient(sock)));
  const answers = await Promise.all(others.map((o, i) => o.ask(rcptRequest({ sender: i % 2 ? 'rej@x.example' : 'ok@x.example' }))));
  assert.deepEqual(answers, others.map((_, i) => (i % 2 ? '554 5.7.1 Access denied' : 'DUNNO')));
  await p.server.close();
  // Open connections were closed by the server, and the socket file is gone.
  assert.equal(await c.closed(), 'action=554 5.7.1 Access denied\n\naction=DUNNO\n\n');
  assert.equal(existsSync(sock), false);
});

test('policyd on a unix socket: socketMode and socketGroup are applied', async (t) => {
  const sock = path.join(tempDir(t), 'policy.sock');
  // As root the socket can be given to another group (by name, as an operator writes it);
  // otherwise only to our own.
  const daemon = /^daemon:[^:]*:(\d+):/m.exec(readFileSync('/etc/group', 'utf8'))?.[1];
  const root = process.getuid?.() === 0 && daemon !== undefined;
  const group = root ? 'daemon' : (process.getgid?.() ?? 0);
  const p = await startPolicyd(t, { ...policy, policyd: { ...policy.policyd, socketMode: '0666', socketGroup: group }, listen: [{ kind: 'unix', path: sock }] });
  const st = statSync(sock);
  assert.equal(st.mode & 0o777, 0o666);
  assert.equal(st.gid, root ? Number(daemon) : group);
  const c = await policyClient(sock);
  t.after(() => c.close());
  assert.equal(await c.ask(rcptRequest()), 'DUNNO');
  assert.equal(p.server.addresses.length, 1);
});

test('policyd on a unix socket: a stale socket of a dead process is replaced', async (t) => {
  const sock = path.join(tempDir(t), 'policy.sock');
  // A process that exits without closing its server leaves the socket file behind.
  execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.exit(0))`]);
  assert.ok(statSync(sock).isSocket());
  const p = await startPolicyd(t, { ...policy, listen: [{ kind: 'unix', path: sock }] });
  const c = await policyClient(sock);
  t.after(() => c.close());
  assert.equal(await c.ask(rcptRequest({ sender: 'rej@x.example' })), '554 5.7.1 Access denied');
  assert.equal(p.logs.filter((l) => l.event === 'listening').length, 1);
});

test('policyd on a unix socket: a live socket or a regular file at the path is refused', async (t) => {
  const dir = tempDir(t);
  const live = path.join(dir, 'live.sock');
  const other = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve) => other.listen(live, resolve));
  t.after(() => new Promise<void>((resolve) => other.close(() => resolve())));
  await assert.rejects(startPolicyd(t, { ...policy, listen: [{ kind: 'unix', path: live }] }), {
    message: `policyd.listen unix:${live}: another process is answering on this socket; stop it or choose another path`,
  });
  const file = path.join(dir, 'file.sock');
  writeFileSync(file, 'not a socket');
  await assert.rejects(startPolicyd(t, { ...policy, listen: [{ kind: 'unix', path: file }] }), {
    message: `policyd.listen unix:${file}: the path exists and is not a socket; remove it by hand or choose another path`,
  });
  assert.equal(statSync(file).isFile(), true, 'the file was left alone');
});

test('policyd: a TCP port in use is refused with the setting and the fix', async (t) => {
  const first = await startPolicyd(t, policy);
  await assert.rejects(startPolicyd(t, { ...policy, listen: [{ kind: 'tcp', host: '127.0.0.1', port: first.port }] }), {
    message: `policyd.listen tcp:127.0.0.1:${first.port}: cannot listen (EADDRINUSE); port ${first.port} is taken; stop the other service (postgrey?) or choose another port`,
  });
});
