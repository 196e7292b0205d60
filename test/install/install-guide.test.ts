// docs/guide/install.md walked as an admin on a fresh machine would, with the real programs: npm
// packs the tree and installs the tarball globally (into a temporary prefix); useradd makes the
// system users (mailward, a vmail user for Dovecot, a cron-like user); the folders get the
// guide's modes; the unit from `mailward systemd-unit` passes systemd-analyze verify and its
// ExecStart runs as systemd would start it (User=, Group=, UMask=, RuntimeDirectory=) — systemd
// is not PID 1 here. Mail then goes over SMTP to a real Dovecot by LMTP (Maildir owned by
// vmail), a submission login is checked by Dovecot, and `sendmail -t` from the cron-like user
// arrives. Last, every file the server made is walked: nothing world-readable unless documented.
// Needs root (useradd, runuser, a private mount namespace for /run/mailward).
// test-timeout: 850 s
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { dovecotInstalled, startDovecot } from '../harness/dovecot.ts';
import { ROOT } from '../harness/cli.ts';
import { watchLog } from '../harness/log-watch.ts';
import { runOwned, spawnOwned, stopGroup, type RunOptions, type RunResult } from '../harness/processes.ts';

const TOOLS = ['useradd', 'userdel', 'groupdel', 'runuser', 'setpriv', 'unshare', 'nsenter', 'install', 'systemd-analyze', 'npm'];
// npm pack (tsc) and the global install (better-sqlite3 may compile SQLite) are slow on a busy machine.
const INSTALL_TIMEOUT_MS = 10 * 60_000;
// The whole walk: past the runner's default per file (the `test-timeout` line above lifts it), within its 900 s kill.
const WALK_TIMEOUT_MS = 840_000;

/** Runs a program to its end (owned by the test) and asserts it succeeded. */
async function sh(t: TestContext, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runOwned(t, cmd, args, { timeoutMs: 120_000, ...opts });
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

function missingTools(): string[] {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin']);
  return TOOLS.filter((tool) => !dirs.some((d) => existsSync(path.join(d, tool))));
}

/** The numeric uid and gid of a user (id(1), as an admin would look). */
async function idOf(t: TestContext, user: string): Promise<{ uid: number; gid: number }> {
  const uid = Number((await sh(t, 'id', ['-u', user])).stdout.trim());
  const gid = Number((await sh(t, 'id', ['-g', user])).stdout.trim());
  return { uid, gid };
}

/** One key of the unit's [Service] section. */
function unitValue(unit: string, key: string): string {
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(unit);
  assert.ok(m, `the unit has no ${key}=`);
  return m[1]!;
}

/** Waits (on the file system, no fixed sleep) until `read` returns at least `n` entries. */
async function waitFor<T>(what: string, read: () => T[], n: number): Promise<T[]> {
  for (const deadline = Date.now() + 60_000; ; ) {
    const got = read();
    if (got.length >= n) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every path below `dir` (folders too, not following links). */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...walk(p));
  }
  return out;
}

const octal = (m: number): string => (m & 0o7777).toString(8).padStart(4, '0');

test('docs/guide/install.md on a fresh machine: npm install -g, a mailward user, the unit, Dovecot, sendmail, safe modes', { timeout: WALK_TIMEOUT_MS }, async (t) => {
  if (process.getuid!() !== 0) {
    if (process.env.MAILWARD_REQUIRE_ALL_TESTS === '1') assert.fail('MAILWARD_REQUIRE_ALL_TESTS=1 but the tests do not run as root: the install guide cannot be walked');
    t.skip('needs root: the guide creates system users and runs the server as one');
    return;
  }
  // As root this must run (CI runs as root): a missing program is a failure, not a skip.
  assert.deepEqual(missingTools(), [], 'install them: apt-get install passwd util-linux systemd npm');
  assert.ok(dovecotInstalled(), 'Dovecot is not installed: apt-get install dovecot-core dovecot-lmtpd (.ci/run does)');

  const root = mkdtempSync(path.join(tmpdir(), 'mailward-install-'));
  // The system users reach the package, the config and dataDir inside it (as /usr, /etc, /var).
  chmodSync(root, 0o755);
  const tag = randomBytes(3).toString('hex');
  const names = { mailward: `mwd${tag}`, vmail: `mwv${tag}`, cron: `mwc${tag}` };
  // Removed whatever happens (registered before they exist; userdel of a missing user is
  // harmless) — but last: userdel refuses a user whose processes (the server, Dovecot's lmtp as
  // vmail) still run, and node runs after hooks in the order they were added.
  const later: Array<() => unknown> = [];
  t.after(async () => {
    for (const fn of later.reverse()) await fn();
    for (const u of Object.values(names)) {
      const del = await runOwned(undefined, 'userdel', [u], { timeoutMs: 60_000 });
      assert.ok(del.code === 0 || /does not exist/.test(del.stderr), `userdel ${u}: ${del.stderr}`);
      await runOwned(undefined, 'groupdel', [u], { timeoutMs: 60_000 });
    }
  });
  // What the test starts is stopped first (last started, first stopped), then the users go.
  t = Object.assign(Object.create(t) as TestContext, { after: (fn: () => unknown) => void later.push(fn) });
  t.after(() => rmSync(root, { recursive: true, force: true }));

  // 1. Install the command: npm pack, then npm install -g of the tarball.
  const prefix = path.join(root, 'usr-local');
  const packed = await sh(t, 'npm', ['pack', '--silent', '--pack-destination', root], { cwd: ROOT, timeoutMs: INSTALL_TIMEOUT_MS });
  const tarball = path.join(root, packed.stdout.trim().split('\n').pop()!);
  await sh(t, 'npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { cwd: root, timeoutMs: INSTALL_TIMEOUT_MS });
  const PATH = `${path.join(prefix, 'bin')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
  const env = { PATH, HOME: root, LANG: 'C.UTF-8' };
  const which = await sh(t, 'sh', ['-c', 'command -v mailward'], { env });
  assert.equal(which.stdout.trim(), path.join(prefix, 'bin', 'mailward'));
  const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal((await sh(t, 'mailward', ['--version'], { env })).stdout.trim(), version);
  const npmRoot = (await sh(t, 'npm', ['root', '-g', '--prefix', prefix], { env })).stdout.trim();
  const mailward = path.join(prefix, 'bin', 'mailward');
  // The unit the package ships is the one the installed command prints.
  const shipped = readFileSync(path.join(npmRoot, 'mailward', 'contrib', 'mailward.service'), 'utf8');
  assert.equal((await sh(t, 'mailward', ['systemd-unit'], { env })).stdout, shipped);

  // 2. The user, the folders, the config (the guide's commands, with this test's paths and names).
  const etc = path.join(root, 'etc', 'mailward');
  const dataDir = path.join(root, 'var', 'lib', 'mailward');
  const configFile = path.join(etc, 'mailward.yaml');
  await sh(t, 'useradd', ['--system', '--home-dir', dataDir, '--shell', '/usr/sbin/nologin', names.mailward]);
  await sh(t, 'useradd', ['--system', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', names.vmail]);
  await sh(t, 'useradd', ['--system', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', names.cron]);
  const mw = await idOf(t, names.mailward);
  const vmail = await idOf(t, names.vmail);
  const cron = await idOf(t, names.cron);
  await sh(t, 'install', ['-d', '-o', 'root', '-g', names.mailward, '-m', '0750', etc]);
  await sh(t, 'install', ['-d', '-o', names.mailward, '-g', names.mailward, '-m', '0750', dataDir]);
  await sh(t, 'cp', [path.join(npmRoot, 'mailward', 'examples', 'mailward.yaml'), configFile]);
  await sh(t, 'chgrp', [names.mailward, configFile]);
  await sh(t, 'chmod', ['0640', configFile]);

  // Dovecot as docs/guide/dovecot.md sets it up: mail stored as vmail, the LMTP and auth
  // sockets 0660 for the mailward user only.
  const alice = { address: 'alice@example.org', password: 'alice-imap-password-1' };
  const dovecot = await startDovecot(t, [alice], { mailOwner: vmail, clientUser: names.mailward });

  // Every DNS question goes to a server on loopback: nothing leaves the machine.
  const dns = await startDns(t, { 'example.net': { MX: ['10 example.net'], A: ['192.0.2.10'] }, 'example.org': { MX: ['10 mx.example.org'] } });

  // The edits docs/guide/install.md (section 2) and docs/guide/dovecot.md ask for, on the example
  // file; loopback and free ports instead of 25/587 (the unit's CAP_NET_BIND_SERVICE is what lets
  // the real ports work), and the test's DNS server.
  const config = parse(readFileSync(configFile, 'utf8')) as Record<string, Record<string, unknown>>;
  Object.assign(config, {
    hostname: 'mx.example.org',
    domains: ['example.org'],
    dataDir,
    log: { ...config.log, format: 'json' },
    dns: { ...config.dns, servers: [dns.address] },
    listeners: { mx: { kind: 'mx', host: '127.0.0.1', port: 0 }, submission: { kind: 'submission', host: '127.0.0.1', port: 0 } },
    auth: { ...config.auth, backend: 'dovecot', dovecot: { socket: dovecot.authSocket } },
    recipients: { dovecot: { socket: dovecot.userdbSocket } },
    sendmail: { ...config.sendmail, users: { ...(config.sendmail!.users as object), [names.cron]: alice.address } },
  });
  // No certificate yet on a fresh machine (docs/guide/tls.md comes later): the server makes a self-signed one.
  delete config.tls;
  // No SES account yet (docs/guide/smarthost-ses.md): direct delivery; local mail by LMTP to Dovecot.
  const delivery = config.delivery!;
  delete delivery.smarthosts;
  Object.assign(delivery, { routes: { '*': 'mx' }, local: { transport: 'lmtp', lmtp: { address: `unix:${dovecot.lmtpSocket}` } } });
  // The example greylists mail from outside (a first attempt gets 450): this one test message is let through.
  const pipeline = config.pipeline as { rcpt: unknown[] };
  pipeline.rcpt = pipeline.rcpt.filter((c) => c !== 'greylist');
  writeFileSync(configFile, stringify(config));
  const asMailward = (args: readonly string[], input?: string): Promise<RunResult> => sh(t, 'runuser', ['-u', names.mailward, '--', mailward, ...args], { env, cwd: root, input });
  await asMailward(['check-config', '--config', configFile]);
  const changed = await sh(t, mailward, ['config', 'show', '--changed', '--config', configFile], { env });
  assert.match(changed.stdout, /mx\.example\.org/);

  // 3. systemd: the unit for these paths, verified, and its ExecStart run as systemd would.
  const unit = (await sh(t, mailward, ['systemd-unit', '--exec', mailward, '--config-file', configFile, '--data-dir', dataDir, '--user', names.mailward, '--group', names.mailward], { env })).stdout;
  const unitFile = path.join(root, 'mailward.service');
  writeFileSync(unitFile, unit);
  const verify = await runOwned(t, 'systemd-analyze', ['verify', unitFile], { timeoutMs: 120_000 });
  const complaints = `${verify.stdout}\n${verify.stderr}`.split('\n').filter((l) => l.includes('mailward.service'));
  assert.deepEqual({ code: verify.code, complaints }, { code: 0, complaints: [] });
  assert.equal(unitValue(unit, 'User'), names.mailward);
  const runtimeDir = path.join('/run', unitValue(unit, 'RuntimeDirectory'));
  // RuntimeDirectory= in a private mount namespace (a tmpfs on /run), so the machine's own /run
  // is left alone; the server and the sendmail client meet there as under systemd.
  const ns = spawnOwned(t, 'unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', `mount -t tmpfs -o mode=0755 tmpfs /run && install -d -o ${names.mailward} -g ${names.mailward} -m ${unitValue(unit, 'RuntimeDirectoryMode')} ${runtimeDir} && echo ready && exec sleep 86400`], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => stopGroup(ns, 'SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    ns.stdout!.setEncoding('utf8').on('data', (d: string) => ((out += d), out.includes('ready') && resolve()));
    ns.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    ns.once('exit', () => reject(new Error(`unshare --mount failed (a private mount namespace needs root with CAP_SYS_ADMIN): ${out}`)));
  });
  const inNs = ['--target', String(ns.pid), '--mount', '--'];
  const execStart = unitValue(unit, 'ExecStart').split(' ');
  // User=, Group= (with the user's supplementary groups), NoNewPrivileges=, UMask=, and the
  // RUNTIME_DIRECTORY systemd sets; no capability (the ports here are above 1024).
  const server = spawnOwned(
    t,
    'nsenter',
    [...inNs, 'setpriv', `--reuid=${unitValue(unit, 'User')}`, `--regid=${unitValue(unit, 'Group')}`, '--init-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '--', 'sh', '-c', 'umask "$0" && exec "$@"', unitValue(unit, 'UMask'), ...execStart],
    { env: { ...env, RUNTIME_DIRECTORY: runtimeDir }, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => stopGroup(server));
  const served = watchLog(server);
  const mxPort = (await served.waitLog((l) => l.event === 'listening' && l.listener === 'mx')).port as number;
  const subPort = (await served.waitLog((l) => l.event === 'listening' && l.listener === 'submission')).port as number;
  const local = await served.waitLog((l) => l.event === 'listening' && l.listener === 'sendmail');
  assert.equal(local.address, path.join(runtimeDir, 'submit.sock'));
  await served.waitLog((l) => l.event === 'started');
  const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Uid:\\s+${mw.uid}\\s+${mw.uid}\\s+${mw.uid}\\s+${mw.uid}$`, 'm'));

  // Mail from outside over SMTP: delivered by LMTP into the Maildir Dovecot keeps as vmail.
  const c = await dial(mxPort);
  t.after(() => c.close());
  await c.expect('220');
  await c.say('EHLO client.example.net').expect('250');
  await c.say('MAIL FROM:<someone@example.net>').expect('250');
  await c.say(`RCPT TO:<${alice.address}>`).expect('250');
  await c.say('DATA').expect('354');
  await c.say('Subject: over SMTP\r\n\r\nfrom outside\r\n.').expect('250');
  await c.say('QUIT').expect('221');
  await waitFor('the SMTP message in Dovecot', () => dovecot.mailbox(alice.address), 1);
  const maildir = dovecot.maildir(alice.address);
  for (const p of [maildir, ...walk(maildir)]) assert.equal(lstatSync(p).uid, vmail.uid, `${p} is not owned by the vmail user`);

  // A submission login checked by Dovecot's passwords (AUTH only after STARTTLS).
  const s = await dial(subPort);
  t.after(() => s.close());
  await s.expect('220');
  await s.say('EHLO laptop').expect('250');
  await s.say('STARTTLS').expect('220');
  await s.startTls();
  await s.say('EHLO laptop').expect('250');
  await s.say(`AUTH PLAIN ${Buffer.from(`\0${alice.address}\0wrong-password`).toString('base64')}`).expect('535');
  await s.say(`AUTH PLAIN ${Buffer.from(`\0${alice.address}\0${alice.password}`).toString('base64')}`).expect('235');
  await s.say('QUIT').expect('221');

  // sendmail for local programs (docs/guide/sendmail.md): a `sendmail` link to mailward-sendmail,
  // called by a cron-like user with no option but -t, finds the socket in /run/mailward.
  const bin = path.join(root, 'sbin');
  await sh(t, 'install', ['-d', '-m', '0755', bin]);
  symlinkSync(path.join(prefix, 'bin', 'mailward-sendmail'), path.join(bin, 'sendmail'));
  const cronRun = await sh(t, 'nsenter', [...inNs, 'runuser', '-u', names.cron, '--', path.join(bin, 'sendmail'), '-t'], {
    env,
    cwd: '/',
    input: `To: ${alice.address}\nSubject: cron output\n\ntest\n`,
  });
  assert.equal(cronRun.stderr, '');
  const both = await waitFor('the sendmail message in Dovecot', () => dovecot.mailbox(alice.address), 2);
  const fromCron = both.find((m) => m.includes('Subject: cron output'));
  assert.ok(fromCron, both.join('\n----\n'));
  assert.match(fromCron, new RegExp(`Received: from local \\(uid=${cron.uid}\\(${names.cron}\\)\\)`));

  // 4. The modes: every file and folder the server made, its owner and mode.
  assert.equal(octal(lstatSync(dataDir).mode), '0750');
  const open: string[] = [];
  for (const p of walk(dataDir)) {
    const st = lstatSync(p);
    assert.equal(st.uid, mw.uid, `${p} is not owned by ${names.mailward}`);
    if ((st.mode & 0o007) !== 0) open.push(`${p} ${octal(st.mode)}`);
    if (/key|token|secret/i.test(path.basename(p)) && st.isFile()) assert.equal(octal(st.mode), '0600', p);
  }
  assert.deepEqual(open, [], 'files in dataDir that every user can read or write');
  // The runtime folder is documented open: the socket every local user reaches (docs/guide/sendmail.md).
  const runtime = await sh(t, 'nsenter', [...inNs, 'find', runtimeDir, '-printf', '%P\\t%m\\t%u\\n']);
  const documented = new Map([['', '755'], ['submit.sock', '666'], ['submit.sock.d', '1733']]);
  for (const line of runtime.stdout.split('\n').filter((l) => l !== '')) {
    const [name, mode, owner] = line.split('\t') as [string, string, string];
    assert.equal(documented.get(name), mode, `${runtimeDir}/${name} is ${mode}: not a documented mode`);
    assert.equal(owner, names.mailward);
  }
  const doctor = await runOwned(t, 'runuser', ['-u', names.mailward, '--', mailward, 'doctor', '--json', '--config', configFile], { env, cwd: root, timeoutMs: 120_000 });
  const findings = (JSON.parse(doctor.stdout) as { findings: Array<{ id: string; message: string }> }).findings;
  assert.deepEqual(
    findings.filter((f) => f.id.startsWith('file-mode') || f.id.startsWith('data-dir')),
    [],
    doctor.stdout,
  );
});
