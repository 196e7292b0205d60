// The part of `mailward doctor` that asks the virus scanner: where the virus check is placed in a
// list, clamd must answer PING — else every message is deferred (or passes unscanned) — and its
// own time-out should end before the placement's deadline, or onError: pass is never reached.
import type { Config } from '../config/load.ts';
import { entryCheck, entryTimeout, type PipelineEntry } from '../config/schema.ts';
import { parseClamdAddress, ping } from '../checks/lib/clamd.ts';
import { VirusOptions } from '../checks/virus.ts';
import { placedChecks } from './audit-config.ts';
import type { Finding } from './finding.ts';

const q = (s: string): string => JSON.stringify(s);

/** The tightest deadline among the virus check's placements, and where it is set. */
function tightestDeadline(config: Config): { ms: number; setting: string } | undefined {
  let best: { ms: number; setting: string } | undefined;
  for (const l of config.listeners) {
    l.pipeline.data.forEach((e: PipelineEntry) => {
      if (entryCheck(e) !== 'virus') return;
      const ms = entryTimeout(e, config.checkTimeoutMs);
      const own = typeof e !== 'string' && e.timeout !== undefined;
      if (!best || ms < best.ms) best = { ms, setting: own ? `pipeline.data (listener ${l.name})` : 'checkTimeout' };
    });
  }
  return best;
}

export async function auditVirus(config: Config, timeoutMs: number): Promise<Finding[]> {
  if (!placedChecks(config).has('virus')) return [];
  // Options the check refuses are reported when the server starts (the pipeline's own error).
  const parsed = VirusOptions.safeParse(config.checks.virus ?? {});
  if (!parsed.success) return [];
  const opts = parsed.data;
  const address = parseClamdAddress(opts.clamd)!;
  const findings: Finding[] = [];
  const r = await ping(address, { timeoutMs });
  if (r.kind === 'error') {
    findings.push({
      id: 'virus-clamd-silent',
      severity: 'error',
      setting: 'checks.virus.clamd',
      message: `clamd at ${q(opts.clamd)} did not answer PING (${r.message}): ${opts.onError === 'pass' ? 'every message passes unscanned (checks.virus.onError is pass)' : 'every message is deferred with a 4xx until it does'}`,
      fix: 'start clamav-daemon (it needs a signature database: run freshclam once), or set checks.virus.clamd to where clamd listens (LocalSocket or TCPSocket in /etc/clamav/clamd.conf)',
    });
  }
  const deadline = tightestDeadline(config);
  if (opts.onError === 'pass' && deadline && opts.timeout >= deadline.ms) {
    findings.push({
      id: 'virus-timeout-past-deadline',
      severity: 'warning',
      setting: 'checks.virus.timeout',
      message: `the scan may take ${opts.timeout} ms but the check's deadline (${deadline.setting}) is ${deadline.ms} ms: a silent clamd meets the deadline first and the message is deferred, not passed as checks.virus.onError says`,
      fix: `give the placement more time, e.g. pipeline.data: [{ check: virus, timeout: ${Math.ceil(opts.timeout / 1000) + 10}s }], or lower checks.virus.timeout below ${deadline.ms} ms`,
    });
  }
  return findings;
}
