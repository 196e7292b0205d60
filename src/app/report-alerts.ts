// The alert when a stored report shows something new failing for one of our domains (config
// reports.alertNewFailures): a DMARC aggregate report with a source IP, not seen failing for that
// domain within reports.alertWindow, whose mail as our domain failed alignment — someone sending
// as us, or a service of ours not aligned yet — or a TLS-RPT report with a failure type at an MX
// of ours not seen within the window. One alert per (domain, source) per window on the guard's
// channels (webhook, postmaster mail), claimed with set-if-absent in the shared store so several
// nodes and report retries send it once; and a log line (event "report-alert").
import type { GuardAlert } from '../guard/alerts.ts';
import type { Logger } from '../observe/log.ts';
import type { Store } from '../store/store.ts';
import type { AggregateReport } from './dmarc-inbound.ts';
import type { TlsReport } from './tlsrpt-inbound.ts';
import { failureHint } from './tlsrpt-inbox.ts';

/** Past this many new sources in one report, the rest are told in one alert together. */
const MAX_SINGLE_ALERTS = 5;
const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

export interface ReportAlertOptions {
  readonly store: Store;
  readonly log: Logger;
  readonly raise: (a: GuardAlert) => Promise<void>;
  readonly windowMs: number;
  readonly clock: () => number;
}

interface Finding {
  readonly key: string;
  readonly kind: 'dmarc-failing-source' | 'tlsrpt-failure';
  readonly domain: string;
  readonly source: string;
  readonly reason: string;
  readonly figures: Record<string, number | string>;
}

export class ReportAlerts {
  constructor(private readonly o: ReportAlertOptions) {}

  /** The sources of a freshly stored DMARC report whose mail failed DMARC, new ones alerted. */
  async dmarc(r: AggregateReport): Promise<void> {
    const bySource = new Map<string, { messages: number; disposition: Set<string> }>();
    for (const row of r.rows) {
      if (row.dkim === 'pass' || row.spf === 'pass' || row.count === 0) continue;
      const s = bySource.get(row.ip) ?? { messages: 0, disposition: new Set<string>() };
      bySource.set(row.ip, s);
      s.messages += row.count;
      s.disposition.add(row.disposition);
    }
    const period = `${day(r.begin * 1000)} to ${day(r.end * 1000)}`;
    await this.#tell(
      [...bySource].map(([ip, s]) => ({
        key: `reports:alerted:dmarc:${r.domain}:${ip}`,
        kind: 'dmarc-failing-source',
        domain: r.domain,
        source: ip,
        reason: `${r.org} reports ${s.messages} message(s) from ${ip} with From: ${r.domain} that failed DMARC (neither SPF nor DKIM aligned), ${period}; this source was not seen failing before. Not your server? Someone sends as ${r.domain}. Yours? Align SPF or DKIM for it.`,
        figures: { domain: r.domain, source: ip, messages: s.messages, disposition: [...s.disposition].join(', '), reporter: r.org, reportId: r.reportId, see: `mailward dmarc report --domain ${r.domain}` },
      })),
    );
  }

  /** The failures of a freshly stored TLS-RPT report, each (domain, result type, MX) new in the window alerted. */
  async tls(r: TlsReport): Promise<void> {
    const found = new Map<string, Finding & { sessions: number; senders: Set<string> }>();
    for (const p of r.policies) {
      for (const f of p.failures) {
        if (f.sessions === 0) continue;
        const at = f.receivingMx ?? f.receivingIp ?? '-';
        const key = `reports:alerted:tls:${p.domain}:${p.type}:${f.resultType}:${at}`;
        let x = found.get(key);
        if (!x) {
          x = { key, kind: 'tlsrpt-failure', domain: p.domain, source: `${f.resultType} at ${at}`, reason: '', figures: {}, sessions: 0, senders: new Set() };
          found.set(key, x);
        }
        x.sessions += f.sessions;
        if (f.sendingMtaIp) x.senders.add(f.sendingMtaIp);
        const hint = failureHint(f.resultType);
        Object.assign(x, {
          reason: `${r.org} reports ${x.sessions} TLS session(s) to ${at} for ${p.domain} failed with ${f.resultType} (policy ${p.type}), ${day(r.begin)} to ${day(r.end)}: ${hint}`,
          figures: { domain: p.domain, policyType: p.type, resultType: f.resultType, receivingMx: at, failedSessions: x.sessions, sendingMta: [...x.senders].join(', ') || '-', reporter: r.org, reportId: r.reportId, see: `mailward tlsrpt report --domain ${p.domain}` },
        });
      }
    }
    await this.#tell([...found.values()]);
  }

  async #tell(findings: readonly Finding[]): Promise<void> {
    const { store, windowMs, clock } = this.o;
    const fresh: Finding[] = [];
    for (const f of findings) {
      // A store outage loses the alert, not the report: the next report of the source tells again.
      if (await store.setIfAbsent(f.key, String(clock()), windowMs).catch(() => false)) fresh.push(f);
    }
    const single = fresh.length > MAX_SINGLE_ALERTS + 1 ? fresh.slice(0, MAX_SINGLE_ALERTS) : fresh;
    for (const f of single) await this.#raise(f.kind, `${f.source} for ${f.domain}`, f.reason, f.figures, f);
    const rest = fresh.slice(single.length);
    if (rest.length > 0) {
      const first = rest[0]!;
      const sources = rest.map((f) => f.source);
      const reason = `${rest.length} more new failing sources for ${first.domain} in the same report: ${sources.slice(0, 20).join(', ')}${sources.length > 20 ? ', ...' : ''}`;
      await this.#raise(first.kind, `${rest.length} more sources for ${first.domain}`, reason, { domain: first.domain, sources: rest.length, see: String(first.figures.see) }, first);
    }
  }

  async #raise(kind: string, name: string, reason: string, figures: Record<string, number | string>, f: Finding): Promise<void> {
    // The alerter logs no notice: this is the line.
    this.o.log.warn({ event: 'report-alert', kind, domain: f.domain, source: f.source, ...figures }, `report alert (${kind}): ${reason}`);
    await this.o.raise({ state: 'notice', kind, name, reason, figures, at: this.o.clock() });
  }
}
