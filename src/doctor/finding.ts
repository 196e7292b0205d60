// What `mailward doctor` reports: findings, each with a stable id (for scripts and tests), a
// severity, the setting or fact it is about, what is wrong, and the fix. Printed as text for a
// person or as JSON for a cron job; any error-level finding makes the exit code non-zero.

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  /** Stable, e.g. "relay-trusts-loopback". */
  readonly id: string;
  readonly severity: Severity;
  /** The config key ("relay.trustedNetworks[0]") or the fact ("spool disk", "clock"). */
  readonly setting: string;
  /** What is wrong, with the value. */
  readonly message: string;
  readonly fix: string;
}

const ORDER: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** Errors first, then warnings, then information; otherwise in the order found. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return findings.map((f, i) => ({ f, i })).sort((a, b) => ORDER[a.f.severity] - ORDER[b.f.severity] || a.i - b.i).map((x) => x.f);
}

/** One line per finding: `error relay-trusts-loopback at relay.trustedNetworks[0]: … Fix: …`. */
export function formatFinding(f: Finding): string {
  return `${f.severity} ${f.id} at ${f.setting}: ${f.message}. Fix: ${f.fix}`;
}

export function countBySeverity(findings: readonly Finding[]): Record<Severity, number> {
  const c: Record<Severity, number> = { error: 0, warning: 0, info: 0 };
  for (const f of findings) c[f.severity]++;
  return c;
}

export function formatReport(findings: readonly Finding[], source: string): string {
  const sorted = sortFindings(findings);
  const c = countBySeverity(sorted);
  const lines = sorted.map(formatFinding);
  lines.push(`${c.error} error(s), ${c.warning} warning(s), ${c.info} note(s) for ${source}`);
  return `${lines.join('\n')}\n`;
}
