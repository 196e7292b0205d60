// A private Postfix instance for the benchmark (`postfix -c DIR`): its own main.cf/master.cf,
// queue and data folders, smtpd on a free loopback port, the hardened restrictions (recipient map,
// reject_unlisted_recipient, reject_unauth_destination, nothing trusted by address) and delivery
// to Maildir with virtual(8). It runs as root with the `postfix` user the package creates.
import { chownSync, chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { DOMAIN, RECIPIENT } from './mailward.ts';
import { freePort, onExitSync, run, waitForSmtp } from './procs.ts';

export interface PostfixInstance {
  readonly name: 'postfix';
  readonly port: number;
  /** The master process; smtpd, cleanup, qmgr, virtual ... are its children. */
  readonly pid: number;
  delivered(): number;
  stop(): Promise<void>;
}

const MASTER_CF = (port: number): string =>
  // Debian's master.cf without chroot (a private instance has no chroot jail to set up) and
  // without the pipe transports this setup never uses.
  `127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

export async function startPostfix(root: string): Promise<PostfixInstance> {
  // The postfix user must be able to reach its queue below the temp folder.
  chmodSync(root, 0o755);
  const etc = path.join(root, 'etc');
  const queue = path.join(root, 'queue');
  const data = path.join(root, 'data');
  const mail = path.join(root, 'mail');
  for (const d of [etc, queue, data, mail]) mkdirSync(d, { recursive: true });
  const uid = (name: string): number => Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  chownSync(data, uid('postfix'), 0);
  const nobody = uid('nobody');
  chownSync(mail, nobody, nobody);
  const port = await freePort();
  writeFileSync(path.join(etc, 'vmailbox'), `${RECIPIENT} ${DOMAIN}/user/\n`);
  writeFileSync(
    path.join(etc, 'main.cf'),
    `compatibility_level = 3.6
queue_directory = ${queue}
data_directory = ${data}
myhostname = mx.${DOMAIN}
mydomain = ${DOMAIN}
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
# Nothing is trusted for its address (the incident: loopback in mynetworks made an open relay).
mynetworks = 192.0.2.1/32
maillog_file = ${root}/maillog
maillog_file_prefixes = ${root}
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtpd_helo_required = yes
disable_vrfy_command = yes
virtual_mailbox_domains = ${DOMAIN}
virtual_mailbox_maps = texthash:${etc}/vmailbox
virtual_mailbox_base = ${mail}
virtual_uid_maps = static:${nobody}
virtual_gid_maps = static:${nobody}
virtual_minimum_uid = 100
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_unlisted_recipient, reject_unauth_destination
# As for Mailward: one client address carries every session of the load generator.
smtpd_client_connection_count_limit = 0
`,
  );
  writeFileSync(path.join(etc, 'master.cf'), MASTER_CF(port));
  await run('postfix', ['-c', etc, 'check']);
  await run('postfix', ['-c', etc, 'start']);
  // The master daemonizes, so it is not our child: stop it even if the benchmark dies.
  const forget = onExitSync(() => spawnSync('postfix', ['-c', etc, 'abort'], { stdio: 'ignore' }));
  await waitForSmtp(port, 30_000, 'Postfix');
  const pidFile = path.join(queue, 'pid', 'master.pid');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const mailbox = path.join(mail, DOMAIN, 'user');
  return {
    name: 'postfix',
    port,
    pid,
    delivered: () => ['new', 'cur'].reduce((n, sub) => n + (existsSync(path.join(mailbox, sub)) ? readdirSync(path.join(mailbox, sub)).length : 0), 0),
    async stop() {
      forget();
      await run('postfix', ['-c', etc, 'stop']).catch(() => run('postfix', ['-c', etc, 'abort']));
      for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(100);
    },
  };
}
