// Real mail clients for tests: swaks (the SMTP test tool) and Python's smtplib (what scripts and
// many web apps use), run as child processes against a test server on loopback. Each runs in its
// own process group, killed on time-out and by the test's after hook, whatever happened.
import { spawn, spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export interface ClientRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Why the real clients cannot run here (swaks or python3 missing, swaks without TLS), or undefined. */
export function missingClients(): string | undefined {
  const swaks = spawnSync('swaks', ['--support'], { encoding: 'utf8' });
  if (swaks.error) return 'swaks is not installed (apt-get install swaks libnet-ssleay-perl)';
  if (!/TLS supported/.test(`${swaks.stdout}${swaks.stderr}`)) return 'swaks has no TLS support (apt-get install libnet-ssleay-perl)';
  if (spawnSync('python3', ['-c', 'import smtplib, ssl'], { encoding: 'utf8' }).status !== 0) return 'python3 with smtplib and ssl is not installed (apt-get install python3)';
  return undefined;
}

/** Runs `cmd` to its end (or kills its process group after `timeoutMs`). */
export function runClient(t: TestContext, cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<ClientRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let done = false;
    const kill = (): void => {
      if (done || child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    t.after(kill);
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`${cmd} did not finish within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      done = true;
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface Submission {
  readonly port: number;
  /** 'starttls' for submission (587), 'implicit' for submissions (465). */
  readonly tls: 'starttls' | 'implicit';
  readonly ehlo: string;
  readonly user: string;
  readonly password: string;
  readonly from: string;
  readonly to: string;
  readonly subject: string;
}

/** swaks: EHLO, TLS, AUTH PLAIN, one message. */
export function swaks(t: TestContext, s: Submission): Promise<ClientRun> {
  return runClient(t, 'swaks', [
    '--server', '127.0.0.1', '--port', String(s.port), s.tls === 'implicit' ? '--tlsc' : '--tls',
    '--ehlo', s.ehlo, '--auth', 'PLAIN', '--auth-user', s.user, '--auth-password', s.password,
    '--from', s.from, '--to', s.to, '--header', `Subject: ${s.subject}`, '--body', 'sent by swaks',
    '--timeout', '30',
  ]);
}

// local_hostname is the EHLO name; the test server's certificate is self-signed.
const SMTPLIB = `
import smtplib, ssl, sys
port, mode, ehlo, user, password, sender, to, subject = sys.argv[1:9]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
if mode == 'implicit':
    s = smtplib.SMTP_SSL('127.0.0.1', int(port), local_hostname=ehlo, context=ctx, timeout=30)
else:
    s = smtplib.SMTP('127.0.0.1', int(port), local_hostname=ehlo, timeout=30)
code, text = s.ehlo()
print('EHLO', code, text.decode().splitlines()[0])
if mode != 'implicit':
    s.starttls(context=ctx)
s.login(user, password)
msg = 'From: %s\\r\\nTo: %s\\r\\nSubject: %s\\r\\n\\r\\nsent by smtplib\\r\\n' % (sender, to, subject)
refused = s.sendmail(sender, [to], msg)
print('SENT', refused)
s.quit()
`;

/** Python smtplib: EHLO, TLS, AUTH (LOGIN or PLAIN, as smtplib picks), one message. */
export function smtplib(t: TestContext, s: Submission): Promise<ClientRun> {
  return runClient(t, 'python3', ['-c', SMTPLIB, String(s.port), s.tls, s.ehlo, s.user, s.password, s.from, s.to, s.subject]);
}
