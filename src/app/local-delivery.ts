// Builds the transport for local mailboxes from config delivery.local: Mailward's Maildir writer
// (path template, vmail owner and group) and/or LMTP to Dovecot, chosen per domain.
import path from 'node:path';
import type { Config } from '../config/load.ts';
import { BUILT_IN } from '../config/load.ts';
import { ConfigError } from '../config/errors.ts';
import { etcEntry } from '../core/etc-files.ts';
import { parseLmtpAddress } from '../core/lmtp-address.ts';
import { parseMaildirTemplate } from '../core/maildir-template.ts';
import { LmtpTransport } from '../delivery/lmtp.ts';
import { LocalTransport } from '../delivery/local.ts';
import { MaildirTransport } from '../delivery/maildir.ts';
import type { SmtpClientOptions } from '../delivery/smtp-client.ts';
import type { Transport } from '../delivery/transport.ts';
import type { DirSyncer } from '../queue/dirsync.ts';
import type { Logger } from '../observe/log.ts';

type OwnerSetting = string | number;

/** A name from /etc/passwd or /etc/group (field 3: uid/gid, field 4: the user's primary gid). */
const lookupIds = (file: string, name: string): string[] | undefined => etcEntry(file, 0, name);

function fail(config: Config, key: string, message: string, fix: string): never {
  throw new ConfigError(config.source, [{ path: key, message, fix }]);
}

/** The uid and gid of delivery.local.maildir.owner/group; undefined when no owner is set. */
export function maildirOwner(config: Config, owner: OwnerSetting | undefined, group: OwnerSetting | undefined): { uid: number; gid: number } | undefined {
  if (owner === undefined && group === undefined) return undefined;
  const key = 'delivery.local.maildir';
  let uid = process.getuid?.() ?? 0;
  let primary: number | undefined;
  if (typeof owner === 'number') uid = owner;
  else if (owner !== undefined) {
    const f = lookupIds('/etc/passwd', owner);
    if (!f) fail(config, `${key}.owner`, `no user ${JSON.stringify(owner)} in /etc/passwd`, `create it (e.g. useradd --system --home /var/vmail --shell /usr/sbin/nologin ${owner}) or give its uid as a number`);
    uid = Number(f[2]);
    primary = Number(f[3]);
  }
  let gid: number;
  if (typeof group === 'number') gid = group;
  else if (group !== undefined) {
    const f = lookupIds('/etc/group', group);
    if (!f) fail(config, `${key}.group`, `no group ${JSON.stringify(group)} in /etc/group`, `create it (groupadd --system ${group}) or give its gid as a number`);
    gid = Number(f[2]);
  } else if (primary !== undefined) gid = primary;
  else fail(config, `${key}.group`, `owner ${String(owner)} is a number, so its group cannot be looked up`, 'set delivery.local.maildir.group too (a name or a number)');
  return { uid, gid };
}

export interface LocalParts {
  readonly config: Config;
  readonly log: Logger;
  readonly syncer: DirSyncer;
  readonly client: SmtpClientOptions;
}

/** The local transport (what the worker calls `local`). */
export function buildLocalTransport(p: LocalParts): Transport {
  const { config, log } = p;
  const lc = config.delivery.local;
  const base = config.source === BUILT_IN ? process.cwd() : path.dirname(path.resolve(config.source));
  const template = lc.maildir.path === undefined ? undefined : parseMaildirTemplate(path.resolve(base, lc.maildir.path)).template;
  const owner = maildirOwner(config, lc.maildir.owner, lc.maildir.group);
  const me = process.getuid?.();
  if (owner && me !== undefined && me !== 0 && me !== owner.uid) {
    log.warn(
      { event: 'maildir-owner', uid: owner.uid, gid: owner.gid, runningAs: me },
      `delivery.local.maildir.owner is uid ${owner.uid} but this server runs as uid ${me}, which cannot give files away: Maildir deliveries will be deferred. Run the server as that user, or deliver by LMTP (delivery.local.transport: lmtp)`,
    );
  }
  const maildir = new MaildirTransport({
    root: config.paths.mail,
    hostname: config.hostname,
    fsync: config.queue.fsync,
    syncer: p.syncer,
    log,
    layout: { lowercase: lc.maildir.lowercase, ...(template ? { template } : {}) },
    ...(owner ? { owner } : {}),
  });
  const lmtpUsed = lc.transport === 'lmtp' || Object.values(lc.domains).includes('lmtp');
  if (!lmtpUsed || !lc.lmtp) return maildir;
  const lmtp = new LmtpTransport({ address: parseLmtpAddress(lc.lmtp.address)!, maxConnections: lc.lmtp.maxConnections, client: p.client, log, setting: 'delivery.local.lmtp.address' });
  return new LocalTransport({ transport: lc.transport, domains: lc.domains, maildir, lmtp });
}
