// `mailward doctor`: the whole audit — the config text, then the machine — as one list of
// findings, and the command's output and exit code. A config that does not load is itself a
// finding (`config-invalid`), so a cron job still gets JSON it can read.
import { loadConfig, type Config } from '../config/load.ts';
import { ConfigError } from '../config/errors.ts';
import { auditConfig, type ConfigAuditOptions } from './audit-config.ts';
import { auditCertificate, auditClock, auditDisk, auditDkim, auditDnsbl, auditPermissions, auditUribl, timedatectl, DEFAULT_DISK, type DiskThresholds, type TimeSync } from './audit-machine.ts';
import { auditPostmaster, type OpenDirectory } from './audit-postmaster.ts';
import { auditVirus } from './audit-virus.ts';
import { auditDns } from './audit-dns.ts';
import { auditAccounts } from './audit-accounts.ts';
import { countBySeverity, formatReport, sortFindings, type Finding } from './finding.ts';

export interface DoctorOptions extends ConfigAuditOptions {
  /** Deadline of each DNS blocklist test query (default 2000 ms). */
  readonly dnsTimeoutMs?: number;
  /** Deadline of the PING to clamd when the virus check is placed (default 2000 ms). */
  readonly clamdTimeoutMs?: number;
  readonly disk?: DiskThresholds;
  /** Whether the clock is synchronised (default: ask timedatectl). */
  readonly timeSync?: () => Promise<TimeSync>;
  readonly now?: () => number;
  /** Opens the directory, for the postmaster audit (the CLI passes app/accounts.ts's openDirectory); without it that audit is skipped. */
  readonly directory?: OpenDirectory;
  /** Also check the published DNS records against the ones `mailward dns records` prints (--dns). */
  readonly liveDns?: boolean;
}

export async function runDoctor(config: Config, opts: DoctorOptions = {}): Promise<Finding[]> {
  const now = (opts.now ?? Date.now)();
  const findings = [...auditConfig(config, opts), ...auditCertificate(config, now), ...auditDkim(config), ...auditPermissions(config), ...auditDisk(config, opts.disk ?? DEFAULT_DISK), ...auditPostmaster(config, opts.directory), ...auditAccounts(config, opts.directory, now)];
  const [dnsbl, uribl, clock, virus] = await Promise.all([auditDnsbl(config, opts.dnsTimeoutMs ?? 2000), auditUribl(config, opts.dnsTimeoutMs ?? 2000), auditClock(config, now, opts.timeSync ?? (() => timedatectl())), auditVirus(config, opts.clamdTimeoutMs ?? 2000)]);
  const live = opts.liveDns ? await auditDns(config) : [];
  return sortFindings([...findings, ...dnsbl, ...uribl, ...clock, ...virus, ...live]);
}

/** Exit codes: 0 nothing wrong (warnings allowed), 1 an error-level finding, 2 the config does not load. */
export const DOCTOR_EXIT = { ok: 0, errors: 1, badConfig: 2 } as const;

export interface DoctorRun {
  readonly code: number;
  readonly output: string;
  readonly findings: readonly Finding[];
}

export async function runDoctorCli(configFile: string | undefined, json: boolean, opts: DoctorOptions = {}): Promise<DoctorRun> {
  let config: Config;
  try {
    config = loadConfig(configFile);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const findings: Finding[] = err.problems.map((p) => ({ id: 'config-invalid', severity: 'error', setting: p.path === '' ? '(top level)' : p.path, message: p.message, fix: p.fix }));
    return { code: DOCTOR_EXIT.badConfig, findings, output: render(findings, err.source, json) };
  }
  const findings = await runDoctor(config, opts);
  const code = countBySeverity(findings).error > 0 ? DOCTOR_EXIT.errors : DOCTOR_EXIT.ok;
  return { code, findings, output: render(findings, config.source, json) };
}

function render(findings: readonly Finding[], source: string, json: boolean): string {
  if (!json) return formatReport(findings, source);
  return `${JSON.stringify({ config: source, counts: countBySeverity(findings), findings }, null, 2)}\n`;
}
