// `mailward dmarc report [--domain D] [--since 7d] [--json]`: what the DMARC aggregate reports
// received at our `rua` say (config dmarcReports.read), per domain: messages, DMARC pass/fail,
// who reported, and the source IPs whose mail failed — someone sending as the domain, or one of
// your own services that is not aligned yet. Read from the shared store, server running or not.
import type { Command } from 'commander';
import { reportAddresses, summarizeReports, type ReportSummary } from '../../app/dmarc-inbox.ts';
import { minute, noReportsLine, refusedLines } from './report-text.ts';
import { registerReportCommand } from './with-store.ts';

const day = (s: number): string => new Date(s * 1000).toISOString().slice(0, 10);
const pct = (n: number, of: number): string => (of === 0 ? '-' : `${((100 * n) / of).toFixed(1)}%`);
const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

/** The summary as an operator reads it. */
export function reportText(s: ReportSummary, o: { readonly sinceText: string; readonly addresses: readonly string[]; readonly enabled: boolean }): string {
  const lines = [`DMARC aggregate reports received since ${minute(s.since)} UTC (${o.sinceText})`];
  if (s.domains.length === 0) {
    lines.push(noReportsLine({ ...o, record: '_dmarc', cadence: 'usually once a day from each large receiver', setting: 'dmarcReports.read.enabled' }));
  }
  for (const d of s.domains) {
    lines.push('', `${d.domain}: ${plural(d.messages, 'message')} in ${plural(d.reports, 'report')} (${day(d.begin)} to ${day(d.end)})`);
    lines.push(`  DMARC pass ${d.pass} (${pct(d.pass, d.messages)}), fail ${d.fail} (${pct(d.fail, d.messages)}); the receivers quarantined ${d.quarantined} and rejected ${d.rejected}`);
    lines.push(`  reporters: ${d.reporters.map((r) => `${r.org} (${plural(r.reports, 'report')}, ${r.messages})`).join(', ')}`);
    if (d.failingSources.length === 0) lines.push('  no source failed DMARC');
    else {
      lines.push('  sources failing DMARC (not your servers? someone sends as you; yours? align SPF or DKIM for them):');
      for (const f of d.failingSources) lines.push(`    ${f.ip.padEnd(39)} ${String(f.messages).padStart(7)}  From: ${f.headerFrom.join(', ') || '-'}  reported by ${f.reporters.join(', ')}`);
    }
  }
  lines.push(...refusedLines(s.refused));
  return `${lines.join('\n')}\n`;
}

export function registerDmarc(program: Command): void {
  const dmarc = program.command('dmarc').description('DMARC aggregate reports');
  registerReportCommand(
    dmarc,
    'what the DMARC reports received at your rua say: pass/fail per domain and the sources failing',
    (q) => summarizeReports(q.store, { since: q.since, ...(q.domain ? { domain: q.domain } : {}) }),
    (summary, q) => reportText(summary, { sinceText: q.sinceText, addresses: reportAddresses(q.config), enabled: q.config.dmarcReports.read.enabled }),
  );
}
