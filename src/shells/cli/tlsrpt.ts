// `mailward tlsrpt report [--domain D] [--since 7d] [--json]`: what the TLS-RPT reports (RFC 8460)
// received at the rua of our `_smtp._tls` record say (config tlsReports.read): per policy domain
// and type the sessions that succeeded and failed, the failure types, between which sending MTA
// and which of our MX, and who reported. A policy with failures is flagged with the likely cause
// (our certificate, MTA-STS policy or TLSA). Read from the shared store, server running or not.
import type { Command } from 'commander';
import { tlsReportAddresses } from '../../app/dmarc-inbox.ts';
import { summarizeTlsReports, type TlsReportSummary } from '../../app/tlsrpt-inbox.ts';
import { minute, noReportsLine, refusedLines } from './report-text.ts';
import { registerReportCommand } from './with-store.ts';

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** The summary as an operator reads it. */
export function tlsReportText(s: TlsReportSummary, o: { readonly sinceText: string; readonly addresses: readonly string[]; readonly enabled: boolean }): string {
  const lines = [`TLS-RPT reports received since ${minute(s.since)} UTC (${o.sinceText})`];
  if (s.policies.length === 0) {
    lines.push(noReportsLine({ ...o, record: '_smtp._tls', cadence: 'once a day from senders that check TLS', setting: 'tlsReports.read.enabled' }));
  }
  for (const p of s.policies) {
    lines.push('', `${p.domain} (policy ${p.type}): ${p.reports} report(s), ${day(p.begin)} to ${day(p.end)}${p.flagged ? '   FAILURES' : ''}`);
    lines.push(`  sessions successful ${p.successful}, failed ${p.failed}`);
    lines.push(`  reporters: ${p.reporters.map((r) => `${r.org} (${r.reports} report(s), ${r.sessions} sessions)`).join(', ')}`);
    if (p.resultTypes.length > 0) lines.push(`  failure types: ${p.resultTypes.map((t) => `${t.resultType} ${t.sessions}`).join(', ')}`);
    for (const f of p.failures) {
      lines.push(`    ${f.resultType.padEnd(26)} ${String(f.sessions).padStart(7)}  from ${f.sendingMtaIp ?? '-'} to ${f.receivingMx ?? f.receivingIp ?? '-'}  reported by ${f.reporters.join(', ')}`);
      lines.push(`      ${f.hint}`);
    }
  }
  lines.push(...refusedLines(s.refused));
  return `${lines.join('\n')}\n`;
}

export function registerTlsRpt(program: Command): void {
  const tlsrpt = program.command('tlsrpt').description('TLS-RPT reports received about your domains');
  registerReportCommand(
    tlsrpt,
    'what the TLS-RPT reports received at your rua say: sessions per policy domain, and the failures',
    (q) => summarizeTlsReports(q.store, { since: q.since, ...(q.domain ? { domain: q.domain } : {}) }),
    (summary, q) => tlsReportText(summary, { sinceText: q.sinceText, addresses: tlsReportAddresses(q.config), enabled: q.config.tlsReports.read.enabled }),
  );
}
