// The hygiene digest (config hygiene.digest): doctor's account findings sent by the server itself
// on the guard's alert channels, the incident's lessons kept in view without a cron job.
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import type { GuardAlert } from '../guard/alerts.ts';
import { auditAccounts } from '../doctor/audit-accounts.ts';
import { openDirectory } from './accounts.ts';

/**
 * The hygiene digest (config hygiene.digest, daily): doctor's account findings (unused logins,
 * old passwords and smarthost credentials) as one warning on the guard's channels, so they are
 * seen without anyone running doctor. Nothing to say: nothing sent.
 */
export async function sendHygieneDigest(config: Config, raise: (a: GuardAlert) => Promise<void>, clock: () => number, log: Logger): Promise<void> {
  try {
    const findings = auditAccounts(config, openDirectory, clock());
    if (findings.length === 0) return;
    const figures: Record<string, string> = {};
    findings.forEach((f, i) => (figures[`${i + 1}. ${f.id}`] = `${f.message}. Fix: ${f.fix}`));
    const reason = `${findings.length} account or credential finding(s): ${[...new Set(findings.map((f) => f.id))].join(', ')}`;
    // A notice is not logged by the alerter: this is its line.
    log.warn({ event: 'hygiene-digest', kind: 'daily-digest', reason, ...figures }, `account hygiene: ${reason}`);
    await raise({ state: 'notice', name: 'account hygiene', kind: 'daily-digest', reason, figures, at: clock() });
  } catch (err) {
    log.error({ event: 'hygiene-digest', error: String(err) }, 'the hygiene digest could not be made');
  }
}
