// `mailward relay-test` as an operator runs it: a real process against a real Mailward (exit 0),
// against a deliberately open relay written here (exit 1), and against nothing (exit 2); plus
// the battery itself and the verdicts for servers that only defer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { startServer } from '../harness/server.ts';
import { runOwned } from '../harness/processes.ts';
import { buildBattery, localDomainFromHostname, runRelayTest, RelayTestError, type RelayTestOptions, type RelayTestReport } from '../../src/app/relay-test.ts';
import { buildProgram, CliError } from '../../src/shells/cli/index.ts';
import { parseTarget } from '../../src/shells/cli/relay-test.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * The command line to run: the real `src/main.ts` once relay-test is registered in the CLI index,
 * until then a stand-in entry that adds it to the same program (same parsing, same exit codes).
 */
function entry(t: TestContext): string {
  if (buildProgram().commands.some((c) => c.name() === 'relay-test')) return path.join(ROOT, 'src/main.ts');
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-relay-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'main.mts');
  const url = (p: string): string => JSON.stringify(new URL(`file://${path.join(ROOT, p)}`).href);
  writeFileSync(
    file,
    `import { buildProgram, CliError } from ${url('src/shells/cli/index.ts')};
import { registerRelayTest } from ${url('src/shells/cli/relay-test.ts')};
const program = buildProgram();
registerRelayTest(program);
program.commands.forEach((c) => c.exitOverride());
try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as { code?: string; exitCode?: number };
  if (typeof e.code === 'string' && e.code.startsWith('commander.')) process.exitCode = e.exitCode === 0 ? 0 : 2;
  else if (err instanceof CliError) { process.stderr.write('mailward: ' + err.message + '\\n'); process.exitCode = err.exitCode; }
  else { process.stderr.write('mailward: ' + String(err) + '\\n'); process.exitCode = 1; }
}
`,
  );
  return file;
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the command asynchronously: the server under test lives in this process. */
function mailward(t: TestContext, args: string[], input = ''): Promise<Run> {
  return runOwned(t, process.execPath, ['--import', 'tsx', entry(t), 'relay-test', ...args], { cwd: ROOT, input, timeoutMs: 60_000 });
}

interface Sink {
  readonly port: number;
  /** Commands received, one list per connection. */
  readonly sessions: string[][];
}

/** A tiny accept-everything SMTP server (an open relay), or one that defers every RCPT. */
async function startSink(t: TestContext, opts: { rcpt?: string } = {}): Promise<Sink> {
  const sessions: string[][] = [];
  const server = net.createServer((s) => {
    const commands: string[] = [];
    sessions.push(commands);
    let buf = '';
    s.on('error', () => undefined);
    s.write('220 sink.example.com ESMTP open\r\n');
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let nl = buf.indexOf('\r\n'); nl !== -1; nl = buf.indexOf('\r\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        commands.push(line);
        const verb = line.split(/[ :]/)[0]!.toUpperCase();
        if (verb === 'EHLO') s.write('250-sink.example.com\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n');
        else if (verb === 'RCPT') s.write(`${opts.rcpt ?? '250 2.1.5 Ok'}\r\n`);
        else if (verb === 'DATA') s.write('354 go ahead\r\n');
        else if (verb === 'QUIT') s.end('221 2.0.0 Bye\r\n');
        else s.write('250 2.0.0 Ok\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as net.AddressInfo).port, sessions };
}

/** A port on which nothing listens. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

test('relay-test: the battery covers every address form, then the authenticated ones', () => {
  const b = buildBattery({ local: 'example.org', foreign: 'example.net', from: 'relay-test@example.net', login: 'alice@example.org' });
  assert.deepEqual(
    b.map((a) => [a.name, a.mailFrom, a.rcptTo, a.authenticated]),
    [
      ['plain', '<relay-test@example.net>', '<victim@example.net>', false],
      ['percent-hack', '<relay-test@example.net>', '<victim%example.net@example.org>', false],
      ['quoted-at', '<relay-test@example.net>', '<"victim@example.net"@example.org>', false],
      ['quoted-percent', '<relay-test@example.net>', '<"victim%example.net"@example.org>', false],
      ['bang-path', '<relay-test@example.net>', '<example.net!victim@example.org>', false],
      ['double-at', '<relay-test@example.net>', '<victim@example.net@example.org>', false],
      ['source-route', '<relay-test@example.net>', '<@example.org:victim@example.net>', false],
      ['source-route-2', '<relay-test@example.net>', '<@example.org,@example.org:victim@example.net>', false],
      ['ipv4-literal', '<relay-test@example.net>', '<victim@[192.0.2.7]>', false],
      ['ipv6-literal', '<relay-test@example.net>', '<victim@[IPv6:2001:db8::7]>', false],
      ['trailing-dot', '<relay-test@example.net>', '<victim@example.net.>', false],
      ['upper-case', '<relay-test@example.net>', '<VICTIM@EXAMPLE.NET>', false],
      ['no-brackets', '<relay-test@example.net>', 'victim@example.net', false],
      ['extra-spaces', '<relay-test@example.net>', '< victim@example.net >', false],
      ['local-then-foreign', '<relay-test@example.net>', '<victim@example.org@example.net>', false],
      ['quoted-local', '<relay-test@example.net>', '<"victim"@example.net>', false],
      ['spoofed-sender', '<postmaster@example.org>', '<victim@example.net>', false],
      ['auth-relay', '<alice@example.org>', '<victim@example.net>', true],
      ['auth-spoofed-sender', '<someone-else@example.org>', '<victim@example.net>', true],
    ],
  );
  assert.equal(buildBattery({ local: 'example.org', foreign: 'example.net', from: 'x@example.net' }).length, 17);
  assert.equal(localDomainFromHostname('mx.example.org'), 'example.org');
  assert.equal(localDomainFromHostname('mail.eu.example.co.uk'), 'eu.example.co.uk');
  assert.equal(localDomainFromHostname('example.org'), 'example.org');
  assert.equal(localDomainFromHostname('localhost'), undefined);
  assert.equal(localDomainFromHostname(undefined), undefined);
});

test('relay-test CLI: exit 0 against Mailward, with a table and the RESULT line', async (t) => {
  const srv = await startServer(t);
  const r = await mailward(t, [`127.0.0.1:${srv.port('mx')}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], `relay test of 127.0.0.1:${srv.port('mx')}: plain SMTP`);
  assert.equal(lines[1], 'server: 220 mx.example.org ESMTP Mailward');
  assert.equal(lines[2], 'local domain example.org, foreign domain example.net, sender <relay-test@example.net>');
  assert.match(lines[4]!, /^ATTEMPT +PATH +MAIL REPLY +RCPT REPLY +VERDICT$/);
  assert.match(lines[5]!, /^plain +<victim@example\.net> +250 2\.1\.0 Sender OK +554 5\.7\.1 Relay access denied +refused$/);
  assert.match(r.stdout, /\nipv6-literal +<victim@\[IPv6:2001:db8::7\]> +250 2\.1\.0 Sender OK +554 5\.7\.1 Relay access denied +refused\n/);
  assert.equal(r.stdout.match(/ refused\n/g)?.length, 17);
  assert.ok(r.stdout.endsWith('\nRESULT: no relay possible (17 attempts refused, 0 inconclusive)\n'), r.stdout);
});

test('relay-test CLI: --auth labels the login relaying "authenticated — allowed"; the password can come from stdin', async (t) => {
  const srv = await startServer(t, { users: [['alice@example.org', 'correct horse battery']] });
  const r = await mailward(t, [`127.0.0.1:${srv.port('submission')}`, '--auth', 'alice@example.org', '--insecure', '--json'], 'correct horse battery\n');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as RelayTestReport;
  assert.equal(report.result, 'RESULT: no relay possible (17 attempts refused, 0 inconclusive)');
  assert.deepEqual(
    report.attempts.filter((a) => a.authenticated).map((a) => [a.name, a.verdict]),
    [
      ['auth-relay', 'allowed'],
      ['auth-spoofed-sender', 'sender-refused'],
    ],
  );
  assert.equal(r.stdout.includes('correct horse'), false, 'the password is not printed');
  const table = await mailward(t, [`127.0.0.1:${srv.port('submissions')}`, '--tls', '--auth', 'alice@example.org:correct horse battery', '--insecure']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /\nauth-relay \(auth\) +<victim@example\.net> +250 2\.1\.0 Sender OK +250 2\.1\.5 Recipient OK +authenticated — allowed\n/);
  assert.match(table.stdout, /\nauthenticated \(not counted as open relay\): auth-relay: authenticated — allowed; auth-spoofed-sender: sender refused\n/);
  // Without --insecure the self-signed certificate is not trusted with a password.
  await assert.rejects(runRelayTest({ host: '127.0.0.1', port: srv.port('submissions'), tls: 'implicit', auth: { user: 'alice@example.org', password: 'correct horse battery' } }), (err: unknown) => {
    assert.ok(err instanceof RelayTestError);
    assert.match(err.message, /^cannot connect to 127\.0\.0\.1:\d+: self-signed certificate \(the certificate could not be verified; for a test server with a self-signed certificate pass --insecure\)/);
    return true;
  });
  assert.equal(srv.logs.filter((l) => l.event === 'auth').length, 2 + 2, 'two logins per run, none on the refused one');
});

test('relay-test CLI: exit 1 against an open relay, and DATA is never sent', async (t) => {
  const sink = await startSink(t);
  const r = await mailward(t, [`127.0.0.1:${sink.port}`]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout.match(/ RELAYED \(open relay\)\n/g)?.length, 17);
  assert.match(r.stdout, /\nwarning: the server offers AUTH on a connection without TLS; passwords could be read on the wire\n/);
  assert.match(r.stdout, /\n {2}percent-hack: the path names the local domain: a catch-all mailbox there would also accept it; check where the server routes it\n/);
  assert.ok(r.stdout.endsWith('\nRESULT: OPEN RELAY — 17 attempt(s) accepted\n'), r.stdout);
  assert.equal(sink.sessions.length, 18);
  assert.deepEqual(sink.sessions[0], ['EHLO relay-test.invalid', 'RSET', 'QUIT']);
  assert.deepEqual(sink.sessions[1], ['EHLO relay-test.invalid', 'MAIL FROM:<relay-test@example.net>', 'RCPT TO:<victim@example.net>', 'RSET', 'QUIT']);
  assert.deepEqual(sink.sessions[3], ['EHLO relay-test.invalid', 'MAIL FROM:<relay-test@example.net>', 'RCPT TO:<"victim@example.net"@example.com>', 'RSET', 'QUIT']);
  assert.equal(sink.sessions.flat().some((c) => /^(DATA|BDAT)/i.test(c)), false);
});

test('relay-test CLI: exit 2 when nothing listens, and for usage errors', async (t) => {
  const port = await closedPort();
  const r = await mailward(t, [`127.0.0.1:${port}`]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `mailward: cannot connect to 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}; check the host and port, and that the server is running\n`);
  const u = await mailward(t, [`127.0.0.1:${port}`, '--tls', '--starttls']);
  assert.deepEqual([u.code, u.stderr], [2, 'mailward: --tls (TLS from the first byte, port 465) and --starttls (upgrade, ports 25/587) cannot be combined; pick the one the port speaks\n']);
  // The other checks, in-process: the target, then the library's own.
  assert.deepEqual(parseTarget('[::1]:2525'), { host: '::1', port: 2525 });
  assert.deepEqual(parseTarget('mx.example.org'), { host: 'mx.example.org', port: 25 });
  assert.throws(() => parseTarget('127.0.0.1:99999'), (err: unknown) => {
    assert.ok(err instanceof CliError);
    assert.deepEqual([err.exitCode, err.message], [2, 'target "127.0.0.1:99999" is not HOST:PORT; write e.g. mx.example.org:25, 127.0.0.1:2525 or [::1]:25']);
    return true;
  });
  const bad: Array<[Partial<RelayTestOptions>, string]> = [
    [{ proxy: { version: 1, source: 'outside' } }, '--proxy-v1 "outside" is not an IP address; give the client address the header should claim, e.g. 203.0.113.9'],
    [{ foreignDomain: 'not a domain' }, '--to-domain "not a domain" is not a domain name; write e.g. example.net'],
    [{ from: 'nobody' }, '--from "nobody" is not a mail address; write e.g. relay-test@example.net'],
    [{ timeoutMs: -1 }, '--timeout -1 is not a positive whole number of milliseconds; e.g. --timeout 10000'],
  ];
  for (const [opts, text] of bad) {
    await assert.rejects(runRelayTest({ host: '127.0.0.1', port, ...opts }), (err: unknown) => err instanceof RelayTestError && err.message === text);
  }
});

test('relay-test: a server that only defers is inconclusive, not clean (exit 2)', async (t) => {
  const sink = await startSink(t, { rcpt: '451 4.7.1 Greylisted, try again later' });
  const r = await runRelayTest({ host: '127.0.0.1', port: sink.port, localDomain: 'example.com', timeoutMs: 5000 });
  assert.deepEqual(new Set(r.attempts.map((a) => a.verdict)), new Set(['deferred']));
  assert.deepEqual(r.counts, { refused: 0, relayed: 0, inconclusive: 17 });
  assert.equal(r.exitCode, 2);
  assert.equal(r.result, 'RESULT: inconclusive — no attempt was refused or accepted (17 inconclusive)');
});
