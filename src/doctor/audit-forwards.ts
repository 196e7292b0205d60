// The part of `mailward doctor` that reads the aliases: an alias or catch-all whose target is
// outside our domains sends strangers' mail out through this server (docs/guide/forwarding.md).
// A catch-all that does so lets anyone pump mail out through any address of the domain; a named
// alias is fine with SRS on (the next hop checks our SPF, bounces come back verified), not without.
import type { Config } from '../config/load.ts';
import type { Finding } from './finding.ts';

/** What this audit needs of the directory (src/directory/directory.ts satisfies it). */
export interface AliasList {
  listAliases(): ReadonlyArray<{ readonly address: string; readonly targets: readonly string[] }>;
}

const outside = (config: Config, target: string): boolean => {
  const at = target.lastIndexOf('@');
  return at >= 0 && !config.domains.includes(target.slice(at + 1).toLowerCase());
};

export function auditForwards(config: Config, dir: AliasList): Finding[] {
  const out: Finding[] = [];
  const srsOn = config.forwarding.srs.enabled;
  for (const a of dir.listAliases()) {
    const targets = a.targets.filter((t) => outside(config, t));
    if (targets.length === 0) continue;
    const value = `${a.address} → ${targets.join(', ')}`;
    if (a.address.startsWith('@')) {
      out.push({
        id: 'forward-catch-all',
        severity: 'warning',
        setting: `alias ${a.address}`,
        message: `the catch-all ${value} forwards mail to any address of ${a.address.slice(1)} outside: every stranger can send through this server with any local part, and the guard counts it all as one source`,
        fix: `forward named addresses only (mailward alias add name${a.address} ${targets[0]}) or point the catch-all at a local mailbox; keep forwarding.srs.enabled on and checks.outbound-guard limits in place`,
      });
    } else if (!srsOn) {
      out.push({
        id: 'forward-without-srs',
        severity: 'warning',
        setting: 'forwarding.srs.enabled',
        message: `false while the alias ${value} forwards outside: the next hop sees the stranger's sender domain sent from this server, fails SPF and may refuse or junk it, and its bounces cannot be verified`,
        fix: 'set forwarding.srs.enabled: true (the default) and publish SPF for forwarding.srs.domain',
      });
    }
  }
  return out;
}
