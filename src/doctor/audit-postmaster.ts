// The part of `mailward doctor` that reads the directory of mailboxes: every local domain needs a
// postmaster (RFC 5321 §4.5.1), and the outbound guard mails its alerts to the first one's. The
// directory is handed in by the caller (doctor does not import the directory layer itself).
import { existsSync } from 'node:fs';
import type { Config } from '../config/load.ts';
import { guardSettings } from '../config/guard-schema.ts';
import type { Finding } from './finding.ts';
import { auditForwards } from './audit-forwards.ts';

/** What doctor needs of the directory (src/directory/directory.ts satisfies it). */
export interface RecipientDirectory {
  /** `local` when a mailbox, an alias or a catch-all receives the address. */
  resolveRecipient(address: string): { readonly kind: string };
  /** Every alias and catch-all ("@domain") with its targets. */
  listAliases(): ReadonlyArray<{ readonly address: string; readonly targets: readonly string[] }>;
  /** Every mailbox with its dates (audit-accounts.ts). */
  listUsers(): ReadonlyArray<{ readonly address: string; readonly disabled: boolean; readonly created: Date; readonly passwordSet: Date; readonly lastLogin?: Date }>;
  close(): void;
}

/** Opens the directory the config names, e.g. `openDirectory` of src/app/accounts.ts. */
export type OpenDirectory = (config: Config) => RecipientDirectory;

/** Whether the guard mails its alerts (checks.outbound-guard.alerts.postmaster, on by default). */
function alertsByMail(config: Config): boolean {
  try {
    return guardSettings(config.checks, config.source).alerts.postmaster;
  } catch {
    return true; // bad options are reported when the config loads; assume the alerts go out
  }
}

export function auditPostmaster(config: Config, open: OpenDirectory | undefined): Finding[] {
  if (!open || config.domains.length === 0) return [];
  const file = config.paths.directory;
  // A directory not made yet has no one in it; opening it would create the file.
  const exists = existsSync(file);
  let missing: string[];
  const forwards: Finding[] = [];
  if (!exists) {
    missing = [...config.domains];
  } else {
    let dir: RecipientDirectory;
    try {
      dir = open(config);
    } catch (err) {
      return [
        {
          id: 'directory-unreadable',
          severity: 'error',
          setting: 'dataDir',
          message: `cannot open the directory ${file}: ${err instanceof Error ? err.message : String(err)}; no one can log in or receive mail`,
          fix: 'check that the file belongs to the user Mailward runs as and is a Mailward directory, or restore it from a backup',
        },
      ];
    }
    try {
      missing = config.domains.filter((d) => dir.resolveRecipient(`postmaster@${d}`).kind !== 'local');
      forwards.push(...auditForwards(config, dir));
    } finally {
      dir.close();
    }
  }
  // The guard's alerts go to postmaster@ the first domain (src/app/compose.ts).
  const alertDomain = alertsByMail(config) ? config.domains[0] : undefined;
  const postmaster = missing.map((domain) => ({
    id: 'postmaster-missing',
    severity: 'warning' as const,
    setting: `domains[${config.domains.indexOf(domain)}]`,
    message: `no mailbox or alias receives postmaster@${domain}${exists ? '' : ` (there is no directory at ${file} yet)`}: RFC 5321 §4.5.1 requires it for every mail domain, and mail to it is refused${domain === alertDomain ? "; the outbound guard's alert mails go there and cannot be delivered" : ''}`,
    fix: `mailward alias add postmaster@${domain} you@${domain} (or mailward user add postmaster@${domain})`,
  }));
  return [...postmaster, ...forwards];
}
