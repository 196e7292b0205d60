// `mailward sendmail` as local programs call it, run as a real child process against a real
// server over its local socket: the caller's uid is proven by a file, mapped to a login, counted
// like a login, and recorded as provenance local:uid=N(name). Exit codes follow sysexits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync, fchmodSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { startServer, type TestServer } from '../harness/server.ts';
import { runMailward } from '../harness/cli.ts';

const me = userInfo();
const provenance = `local:uid=${me.uid}(${me.username})`;

/** A config file that names only the socket (what the CLI reads). */
function cliConfig(t: { after(fn: () => void): void }, socket: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-sendmail-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'mailward.yaml');
  writeFileSync(file, `sendmail:\n  socket: ${JSON.stringify(socket)}\n`);
  return file;
}

async function serverFor(t: Parameters<typeof startServer>[0], sendmail: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<{ srv: TestServer; config: string }> {
  const srv = await startServer(t, { users: [['webmaster@example.org', 'pw-webmaster-1'], ['bob@example.org', 'pw-bob-1']], config: { sendmail, ...extra } });
  return { srv, config: cliConfig(t!, srv.config.sendmail.socket) };
}

const message = 'To: webmaster@example.org\nBcc: bob@example.org\nSubject: cron output\n\nhello from cron\n.\nafter a lone dot (-i keeps it)\n';

test('echo test | sendmail -t -i arrives with the provenance of the local user; Bcc is removed', async (t) => {
  const { srv, config } = await serverFor(t, { users: { [me.username]: 'webmaster@example.org' } });
  const run = await runMailward(['sendmail', '-C', config, '-t', '-i', '-F', 'Cron Daemon'], message);
  assert.equal(run.code, 0, run.stderr);
  const [got] = await srv.waitForMail('webmaster@example.org');
  assert.match(got!, new RegExp(`Received: from local \\(uid=${me.uid}\\(${me.username}\\)\\)`));
  assert.match(got!, /From: "Cron Daemon" <webmaster@example.org>/);
  assert.match(got!, /after a lone dot/);
  assert.doesNotMatch(got!, /^Bcc:/im);
  const [bcc] = await srv.waitForMail('bob@example.org');
  assert.doesNotMatch(bcc!, /^Bcc:/im);
  const queued = await srv.waitForLog((l) => l.event === 'queued');
  assert.equal(queued.client, provenance);
  assert.equal(queued.login, 'webmaster@example.org');
});

test('without -i a lone dot ends the message; recipients as arguments', async (t) => {
  const { srv, config } = await serverFor(t, { users: { [me.username]: 'webmaster@example.org' } });
  const run = await runMailward(['sendmail', '-C', config, 'bob@example.org'], 'Subject: x\n\nkept\n.\ndropped\n');
  assert.equal(run.code, 0, run.stderr);
  const [got] = await srv.waitForMail('bob@example.org');
  assert.match(got!, /kept/);
  assert.doesNotMatch(got!, /dropped/);
});

test('an unmapped local user is refused with EX_NOUSER (67), naming the setting', async (t) => {
  const { srv, config } = await serverFor(t, {});
  const run = await runMailward(['sendmail', '-C', config, '-t'], message);
  assert.equal(run.code, 67, run.stderr);
  assert.match(run.stderr, /sendmail\.users/);
  await srv.waitForLog((l) => l.kind === 'local-refused' && l.uid === me.uid);
});

test('with the server down sendmail exits 75 (EX_TEMPFAIL) and says the message was not sent', async (t) => {
  const { srv, config } = await serverFor(t, { users: { [me.username]: 'webmaster@example.org' } });
  await srv.stop();
  const run = await runMailward(['sendmail', '-C', config, '-t'], message);
  assert.equal(run.code, 75, run.stderr);
  assert.match(run.stderr, /not running.*NOT sent/);
});

test('the rate limit counts the local login like any login', async (t) => {
  const rules = [{ name: 'one-per-hour', count: 'messages', key: 'login', window: '1h', limit: 1 }];
  const { srv, config } = await serverFor(t, { users: { [me.username]: 'webmaster@example.org' } }, { checks: { 'rate-limit': { rules } } });
  const first = await runMailward(['sendmail', '-C', config, 'bob@example.org'], 'Subject: 1\n\none\n');
  assert.equal(first.code, 0, first.stderr);
  const second = await runMailward(['sendmail', '-C', config, 'bob@example.org'], 'Subject: 2\n\ntwo\n');
  assert.equal(second.code, 75, second.stderr);
  const refused = await srv.waitForLog((l) => l.check === 'rate-limit' && l.login === 'webmaster@example.org');
  assert.equal(refused.client, provenance);
});

test('sender-login holds for local mail: -f with an address the login does not own is refused', async (t) => {
  const { config } = await serverFor(t, { users: { [me.username]: 'webmaster@example.org' } });
  const run = await runMailward(['sendmail', '-C', config, '-f', 'bob@example.org', 'bob@example.org'], 'Subject: x\n\nx\n');
  assert.equal(run.code, 69, run.stderr);
  assert.match(run.stderr, /not owned/);
});

/** Speaks the handshake by hand: `make` may create the proof file (or not) before PROVE. */
async function handshake(socket: string, make: (dir: string, nonce: string) => void): Promise<string> {
  const s = net.createConnection(socket);
  let buf = '';
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      while (buf.includes('\n')) {
        const line = buf.slice(0, buf.indexOf('\n'));
        buf = buf.slice(buf.indexOf('\n') + 1);
        lines.push(line);
        if (lines.length === 1) {
          const [, , nonce, dir] = line.split(' ');
          make(dir!, nonce!);
          s.write('PROVE\n');
        } else {
          s.destroy();
          resolve();
        }
      }
    });
  });
  return lines[1]!;
}

test('the identity is proven, not claimed: no proof file, or one others could write, is refused', async (t) => {
  const { srv } = await serverFor(t, { users: { [me.username]: 'webmaster@example.org' } });
  const socket = srv.config.sendmail.socket;
  assert.match(await handshake(socket, () => undefined), /^NO 77 identity not proven: no proof file/);
  const proof = (mode: number, content?: string) => (dir: string, nonce: string) => {
    const fd = openSync(path.join(dir, nonce), 'wx', 0o600);
    fchmodSync(fd, mode);
    writeSync(fd, content ?? nonce);
    closeSync(fd);
  };
  // Others could write it: anyone could have put the nonce in.
  assert.match(await handshake(socket, proof(0o666)), /^NO 77 .*mode is 666/);
  // Unreadable by the server when it runs as its own user: one mode, the one the client uses.
  assert.match(await handshake(socket, proof(0o600)), /^NO 77 .*mode is 600, not 644/);
  assert.match(await handshake(socket, proof(0o644, 'not the nonce')), /^NO 77 .*does not hold the nonce/);
  assert.equal(await handshake(socket, proof(0o644)), 'OK webmaster@example.org');
});

test('-bs speaks SMTP on standard input and output, logged in as the mapped login', async (t) => {
  const { srv, config } = await serverFor(t, { users: { [me.username]: 'webmaster@example.org' } });
  const script = ['EHLO cron', 'MAIL FROM:<webmaster@example.org>', 'RCPT TO:<bob@example.org>', 'DATA'].join('\r\n') + '\r\n';
  const run = await runMailward(['sendmail', '-C', config, '-bs'], `${script}Subject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n`);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^220 /);
  assert.match(run.stdout, /250 2\.0\.0 Ok: queued as/);
  const [got] = await srv.waitForMail('bob@example.org');
  assert.match(got!, /via -bs/);
});
