// Running unprivileged (docs/decisions/0020-unprivileged-systemd.md). Two ways in:
//  - systemd starts the server as User=mailward with CAP_NET_BIND_SERVICE (the shipped unit):
//    nothing to do here but the umask;
//  - root starts it with `user:` set: the listeners are bound first, dataDir is handed to that
//    user, and the process switches to it before it opens a spool file or reads a byte of mail.
//    The acceptor processes are forked later, so they run as that user too.
import { execFileSync } from 'node:child_process';
import { lchownSync, lstatSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Config } from '../config/load.ts';
import { ConfigError } from '../config/errors.ts';
import type { Logger } from '../observe/log.ts';

/**
 * Files the server creates are never world-readable: 0027 turns the 0666 that better-sqlite3,
 * the spool and the maildir writer ask for into 0640, and directories into 0750.
 */
export const SAFE_UMASK = 0o027;

export interface Account {
  readonly user: string;
  readonly uid: number;
  readonly group: string;
  readonly gid: number;
}

const fail = (config: Config, key: string, message: string, fix: string): never => {
  throw new ConfigError(config.source, [{ path: key, message, fix }]);
};

/** One `getent DATABASE KEY` line split at ":", or undefined when there is no such entry. */
function getent(database: 'passwd' | 'group', key: string): string[] | undefined {
  try {
    return execFileSync('getent', [database, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0]!.split(':');
  } catch {
    return undefined;
  }
}

/** The uid and gid of `user`/`group` from the system's user database (NSS, via getent). */
export function lookupAccount(config: Config): Account | undefined {
  if (config.user === undefined) {
    if (config.group !== undefined) fail(config, 'group', `group ${JSON.stringify(config.group)} is set without user`, 'set user too (e.g. user: mailward), or remove group');
    return undefined;
  }
  const pw = getent('passwd', config.user);
  if (!pw) return fail(config, 'user', `there is no user ${JSON.stringify(config.user)} on this machine`, `create it: useradd --system --home-dir ${config.dataDir} --shell /usr/sbin/nologin ${config.user}`);
  const uid = Number(pw[2]);
  let gid = Number(pw[3]);
  let group = getent('group', String(gid))?.[0] ?? String(gid);
  if (config.group !== undefined) {
    const gr = getent('group', config.group);
    if (!gr) return fail(config, 'group', `there is no group ${JSON.stringify(config.group)} on this machine`, `create it (groupadd --system ${config.group}) or remove group to use ${config.user}'s own group`);
    gid = Number(gr[2]);
    group = gr[0]!;
  }
  if (uid === 0) return fail(config, 'user', `user ${JSON.stringify(config.user)} is root (uid 0): that drops nothing`, 'name an unprivileged system user, e.g. user: mailward');
  return { user: config.user, uid, group, gid };
}

/** Binds every listener's socket now (as root); the listeners take them over (listener.ts `bound`). */
export async function bindListeners(config: Config): Promise<Map<string, net.Server>> {
  const bound = new Map<string, net.Server>();
  try {
    for (const l of config.listeners) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', (err) => reject(new Error(`listener ${l.name}: cannot listen on ${l.host}:${l.port}: ${err.message}; check that the address exists and the port is free`)));
        s.listen({ host: l.host, port: l.port }, resolve);
      });
      bound.set(l.name, s);
    }
  } catch (err) {
    for (const s of bound.values()) s.close();
    throw err;
  }
  return bound;
}

/** Gives `dir` and everything under it (not following links) to the account, where it is not already. */
function chownTree(dir: string, a: Account): number {
  let changed = 0;
  const walk = (p: string): void => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    if (st.uid !== a.uid || st.gid !== a.gid) {
      lchownSync(p, a.uid, a.gid);
      changed++;
    }
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(path.join(p, name));
  };
  walk(dir);
  return changed;
}

/**
 * Hands dataDir (and a store file kept elsewhere) to the account and switches this process to
 * it: supplementary groups, then the group, then the user (the other order would leave root's
 * groups behind). Verifies that root cannot be taken back.
 */
export function dropPrivileges(config: Config, a: Account, log: Logger): void {
  let changed = chownTree(config.dataDir, a);
  if (!config.paths.store.startsWith(config.dataDir + path.sep)) {
    for (const f of [config.paths.store, `${config.paths.store}-wal`, `${config.paths.store}-shm`]) changed += chownTree(f, a);
  }
  // POSIX-only calls (absent on Windows, hence optional in the types).
  const p = process as NodeJS.Process & { initgroups(user: string, gid: number): void; setgid(id: number): void; setuid(id: number): void };
  p.initgroups(a.user, a.gid);
  p.setgid(a.gid);
  p.setuid(a.uid);
  let regained = true;
  try {
    p.setuid(0);
  } catch {
    regained = false;
  }
  if (regained || process.getuid!() !== a.uid || process.geteuid!() !== a.uid) throw new Error(`could not give up root: still uid ${process.geteuid!()} after switching to ${a.user}`);
  log.info({ event: 'privileges', user: a.user, uid: a.uid, group: a.group, gid: a.gid, chowned: changed }, `running as ${a.user}:${a.group} (uid ${a.uid}, gid ${a.gid})`);
}

/**
 * What `serve` does before it starts anything: the umask, then (as root, with `user` set) the
 * bind and the switch. Returns the bound sockets for startMailward.
 */
export async function enterUnprivileged(config: Config, log: Logger, prepare: () => void): Promise<Map<string, net.Server> | undefined> {
  process.umask(SAFE_UMASK);
  const account = lookupAccount(config);
  const uid = process.getuid!();
  if (uid !== 0) {
    if (account && account.uid !== uid) fail(config, 'user', `the server runs as uid ${uid}, not root, so it cannot switch to ${JSON.stringify(config.user)} (uid ${account.uid})`, `start it as root, or as ${config.user} itself (systemd: User=${config.user}), or remove user`);
    return undefined;
  }
  if (!account) {
    log.warn({ event: 'running-as-root', setting: 'user' }, 'running as root: every session and check runs with full privileges. Fix: set user: mailward (and create that system user), or start under the shipped systemd unit');
    return undefined;
  }
  prepare();
  const bound = await bindListeners(config);
  try {
    dropPrivileges(config, account, log);
  } catch (err) {
    for (const s of bound.values()) s.close();
    throw err;
  }
  return bound;
}
