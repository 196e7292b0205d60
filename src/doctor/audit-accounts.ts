// The incident's lessons as doctor findings (config hygiene): logins nobody has used for long
// (delete or disable them: a forgotten account's password is the one nobody notices stolen),
// passwords set long ago, and smarthost credentials not rotated (the passwordFile's age).
import { existsSync, statSync } from 'node:fs';
import type { Config } from '../config/load.ts';
import type { Finding } from './finding.ts';
import type { OpenDirectory } from './audit-postmaster.ts';

const DAY = 86_400_000;
const days = (ms: number): number => Math.floor(ms / DAY);

export function auditAccounts(config: Config, open: OpenDirectory | undefined, now: number): Finding[] {
  const h = config.hygiene;
  const findings: Finding[] = [];
  if (open && existsSync(config.paths.directory)) {
    let users: ReturnType<ReturnType<OpenDirectory>['listUsers']> = [];
    try {
      const dir = open(config);
      try {
        users = dir.listUsers();
      } finally {
        dir.close();
      }
    } catch {
      users = []; // audit-postmaster reports a directory that cannot be opened
    }
    for (const u of users) {
      if (u.disabled) continue;
      const last = u.lastLogin?.getTime();
      const since = last ?? u.created.getTime();
      if (now - since >= h.unusedLogin) {
        findings.push({
          id: 'login-unused',
          severity: 'warning',
          setting: 'hygiene.unusedLogin',
          message: `${u.address} has ${last === undefined ? `never logged in (created ${days(now - since)} days ago)` : `not logged in for ${days(now - since)} days`}; an unused login's password can be stolen and used without anyone noticing`,
          fix: `mailward user del ${u.address} (or disable it); to keep it, log in with it once`,
        });
      }
      if (now - u.passwordSet.getTime() >= h.passwordAge) {
        findings.push({
          id: 'password-old',
          severity: 'warning',
          setting: 'hygiene.passwordAge',
          message: `the password of ${u.address} was set ${days(now - u.passwordSet.getTime())} days ago`,
          fix: `mailward user passwd ${u.address}, and give the new password to its user only`,
        });
      }
    }
  }
  for (const [name, s] of Object.entries(config.delivery.smarthosts)) {
    const file = s.auth?.passwordFile;
    if (!file) continue;
    let mtime: number;
    try {
      mtime = statSync(file).mtimeMs;
    } catch {
      continue; // a missing file is check-config's finding
    }
    if (now - mtime >= h.credentialAge) {
      findings.push({
        id: 'smarthost-credential-old',
        severity: 'warning',
        setting: `delivery.smarthosts.${name}.auth.passwordFile`,
        message: `the credential of smarthost ${name} (${s.host}, user ${s.auth!.user}) in ${file} was last changed ${days(now - mtime)} days ago`,
        fix: `make a new credential at the provider (Amazon SES: new SMTP credentials in IAM), write it to ${file}, restart mailward, then delete the old one at the provider`,
      });
    }
  }
  return findings;
}
