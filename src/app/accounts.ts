// Opens the directory of local mailboxes and aliases for the configured domains. The server and
// the CLI (`mailward user add`, `alias add`) use the same SQLite file at the same time.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/load.ts';
import { availableParallelism } from 'node:os';
import { HashPool } from '../core/password.ts';
import { Directory, type OutsideMailboxes } from '../directory/directory.ts';
import { DovecotUserdb } from '../directory/dovecot-userdb.ts';

export type { Directory };

/** `hashPool`: verify logins on it (a server's sessions); the CLI hashes on the calling thread. */
export function openDirectory(config: Config, opts: { readonly hashPool?: HashPool } = {}): Directory {
  mkdirSync(path.dirname(config.paths.directory), { recursive: true, mode: 0o750 });
  return Directory.open(config.paths.directory, {
    domains: [...config.domains],
    ...(config.recipientDelimiter ? { recipientDelimiter: config.recipientDelimiter } : {}),
    ...(opts.hashPool ? { hashPool: opts.hashPool } : {}),
    ...(outsideMailboxes(config) ?? {}),
  });
}

/** recipients.dovecot: the users of Dovecot's userdb are mailboxes of the domains it names. */
function outsideMailboxes(config: Config): { outside: OutsideMailboxes } | undefined {
  const d = config.recipients.dovecot;
  if (!d) return undefined;
  const userdb = new DovecotUserdb({ socket: d.socket, service: d.service, timeoutMs: d.timeout, positiveTtlMs: d.positiveTtl, negativeTtlMs: d.negativeTtl });
  return { outside: { domains: d.domains, exists: (mailbox, signal) => userdb.exists(mailbox, signal) } };
}

/**
 * The login hashing threads of a server process (config auth.hashThreads, auth.hashQueue). The
 * default is 1 thread on one or two CPUs, else 2: enough for people logging in, and a spray
 * cannot take more CPU than that from the mail.
 */
export function openHashPool(config: Config): HashPool {
  const threads = config.auth.hashThreads ?? (availableParallelism() <= 2 ? 1 : 2);
  return new HashPool({ threads, maxQueued: config.auth.hashQueue });
}
