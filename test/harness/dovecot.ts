// Starts a real Dovecot (Debian dovecot-core + dovecot-lmtpd) for a test: its own folder, a
// minimal dovecot.conf that includes nothing from /etc, LMTP on a unix socket and on a free
// loopback port, the auth-client and auth-userdb sockets, users in a passwd-file. It runs in the
// foreground (-F) in a process group the test owns, and is killed when the test ends.
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { freePort } from './ports.ts';
import { exited, spawnOwned, stopGroup } from './processes.ts';
import { readMaildir } from './server.ts';

export const DOVECOT = '/usr/sbin/dovecot';

export interface DovecotUser {
  readonly address: string;
  readonly password: string;
  /** Dovecot's quota rule for this user, e.g. "*:storage=1B" (full: LMTP answers 452 4.2.2). */
  readonly quotaRule?: string;
}

export interface TestDovecot {
  readonly dir: string;
  /** The LMTP unix socket. */
  readonly lmtpSocket: string;
  readonly lmtpPort: number;
  readonly authSocket: string;
  readonly userdbSocket: string;
  /** Messages in a user's Maildir (new/ and cur/). */
  mailbox(address: string): string[];
  /** The user's Maildir (<dir>/mail/<domain>/<local>/Maildir). */
  maildir(address: string): string;
  /** Rewrites the passwd-file (Dovecot re-reads it when it changes). */
  setUsers(users: readonly DovecotUser[]): void;
  readonly log: () => string;
}

export interface DovecotOptions {
  /** The uid/gid mail is stored as (a vmail user); default nobody under root, else the current user. */
  readonly mailOwner?: { readonly uid: number; readonly gid: number };
  /**
   * The one user that may reach the LMTP and auth sockets (mode 0660, as docs/guide/dovecot.md
   * sets them up for the user Mailward runs as); default every user (0666).
   */
  readonly clientUser?: string;
}

export function dovecotInstalled(): boolean {
  return existsSync(DOVECOT) && existsSync('/usr/lib/dovecot/lmtp');
}

export function dovecotVersion(): string {
  return execFileSync(DOVECOT, ['--version'], { encoding: 'utf8' }).trim();
}

/**
 * The uid/gid that mail is stored as. Dovecot refuses uid 0 for a mail user, so a test running
 * as root stores mail as nobody (and hands the folder to it); otherwise as the current user.
 */
function mailOwner(): { uid: number; gid: number } {
  const me = userInfo();
  return me.uid === 0 ? { uid: 65534, gid: 65534 } : { uid: me.uid, gid: me.gid };
}

export async function startDovecot(t: TestContext, users: readonly DovecotUser[], opts: DovecotOptions = {}): Promise<TestDovecot> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mailward-dovecot-'));
  const run = path.join(dir, 'run');
  const mail = path.join(dir, 'mail');
  for (const d of [run, path.join(dir, 'state'), mail]) mkdirSync(d, { recursive: true });
  const owner = opts.mailOwner ?? mailOwner();
  const listenerMode = opts.clientUser === undefined ? 'mode = 0666' : `mode = 0660\n    user = ${opts.clientUser}\n    group = ${opts.clientUser}`;
  // The mail user (nobody, under root) must reach its folder through mkdtemp's 0700 folder.
  chmodSync(dir, 0o755);
  chownSync(mail, owner.uid, owner.gid);
  const me = userInfo();
  const group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
  const passwd = path.join(dir, 'passwd');
  const logFile = path.join(dir, 'dovecot.log');
  const maildir = (address: string): string => {
    const at = address.lastIndexOf('@');
    return path.join(mail, address.slice(at + 1).toLowerCase(), address.slice(0, at).toLowerCase(), 'Maildir');
  };
  const setUsers = (list: readonly DovecotUser[]): void => {
    const lines = list.map((u) => {
      const home = path.dirname(maildir(u.address));
      const extra = u.quotaRule ? `userdb_quota_rule=${u.quotaRule}` : '';
      return `${u.address}:{PLAIN}${u.password}:${owner.uid}:${owner.gid}::${home}::${extra}`;
    });
    writeFileSync(passwd, lines.join('\n') + '\n');
  };
  setUsers(users);
  const lmtpPort = await freePort();
  const conf = path.join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `# Written by test/harness/dovecot.ts; nothing from /etc/dovecot is included.
base_dir = ${run}
state_dir = ${path.join(dir, 'state')}
log_path = ${logFile}
info_log_path = ${logFile}
instance_name = mailward-test-${path.basename(dir)}
protocols = lmtp
listen = 127.0.0.1
default_internal_user = ${me.username}
default_internal_group = ${group}
default_login_user = ${me.username}
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_plugins = quota
quota_full_tempfail = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${passwd}
}
userdb {
  driver = passwd-file
  args = username_format=%u ${passwd}
}
plugin {
  quota = maildir:User quota
}
service lmtp {
  unix_listener lmtp {
    ${listenerMode}
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
}
service auth {
  unix_listener auth-client {
    ${listenerMode}
  }
  unix_listener auth-userdb {
    ${listenerMode}
  }
}
service anvil {
  chroot =
}
service stats {
  chroot =
}
`,
  );
  const child = spawnOwned(t, DOVECOT, ['-F', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  t.after(async () => {
    await stopGroup(child, 'SIGTERM', 10_000);
    rmSync(dir, { recursive: true, force: true });
  });
  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '') + output;
  const lmtpSocket = path.join(run, 'lmtp');
  const authSocket = path.join(run, 'auth-client');
  const userdbSocket = path.join(run, 'auth-userdb');
  // Ready when the master logs its start-up line and the sockets exist (it creates them first).
  let gone = false;
  void exited(child).then(() => (gone = true));
  for (const deadline = Date.now() + 60_000; ; ) {
    if (gone) throw new Error(`dovecot exited at start:\n${log()}`);
    if (/starting up/.test(log()) && [lmtpSocket, authSocket, userdbSocket].every((s) => existsSync(s))) break;
    if (Date.now() > deadline) throw new Error(`dovecot did not start:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { dir, lmtpSocket, lmtpPort, authSocket, userdbSocket, mailbox: (a) => readMaildir(maildir(a)), maildir, setUsers, log };
}
