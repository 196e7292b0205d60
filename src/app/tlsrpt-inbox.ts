// Keeps the TLS-RPT reports (RFC 8460) that other senders mail to the rua of our `_smtp._tls`
// record (config tlsReports.read): stored once per (organization-name, report-id) with the
// retention as TTL, and summed by `summarizeTlsReports` for `mailward tlsrpt report` and the
// dashboard — per policy domain and type the sessions that succeeded and failed, which failures,
// between which sending MTA and which of our MX. Failures about our own domain are flagged with
// what usually causes them: peers that cannot validate our certificate, policy or TLSA.
import type { Store } from '../store/store.ts';
import { receivedReportKey, type ReportReceipt } from './report-receipt.ts';
import type { TlsFailureDetail, TlsReport } from './tlsrpt-inbound.ts';

export const TLS_REPORT_PREFIX = 'tlsrpt:rua:r:';
export const TLS_REFUSED_PREFIX = 'tlsrpt:rua:e:';

export interface StoredTlsReport extends TlsReport, ReportReceipt {}

export const tlsReportKey = (org: string, id: string): string => receivedReportKey(TLS_REPORT_PREFIX, org, id);

/** What a failure type usually means for the receiving side (ours), and the fix (RFC 8460 §4.3). */
export function failureHint(resultType: string): string {
  switch (resultType) {
    case 'starttls-not-supported':
      return 'the sender saw no STARTTLS on your MX: check that the mx listener offers it (tls.cert, tls.key)';
    case 'certificate-host-mismatch':
      return 'your MX certificate does not name the MX host: renew it for the MX name (tls.acme, mailward doctor)';
    case 'certificate-expired':
      return 'your MX certificate has expired: renew it (tls.acme, or certbot and tls.cert)';
    case 'certificate-not-trusted':
      return 'the sender does not trust your MX certificate: use one from a public CA and serve the full chain';
    case 'validation-failure':
      return 'the sender could not validate your TLS setup: check the certificate chain and mailward doctor';
    case 'tlsa-invalid':
    case 'dane-required':
      return 'your TLSA records do not match the certificate served: publish the TLSA of the current certificate (mailward dns records) before you change it';
    case 'dnssec-invalid':
      return 'the DNSSEC signatures of your zone do not validate: check the zone signing at your DNS host';
    case 'sts-policy-fetch-error':
      return 'the sender could not fetch https://mta-sts.<domain>/.well-known/mta-sts.txt: check mtaSts.serve and its certificate';
    case 'sts-policy-invalid':
      return 'your MTA-STS policy could not be parsed, or does not list the MX: check mtaSts.serve.mx';
    case 'sts-webpki-invalid':
      return 'the certificate of mta-sts.<domain> is not valid for the sender: renew it for that name';
    default:
      return 'see the failure detail and mailward doctor';
  }
}

export interface TlsFailureRow extends Pick<TlsFailureDetail, 'resultType' | 'sendingMtaIp' | 'receivingMx' | 'receivingIp'> {
  readonly sessions: number;
  readonly reporters: readonly string[];
  readonly hint: string;
}

export interface TlsPolicySummary {
  readonly domain: string;
  readonly type: string;
  readonly reports: number;
  readonly successful: number;
  readonly failed: number;
  /** Failed sessions per result type, most first. */
  readonly resultTypes: ReadonlyArray<{ readonly resultType: string; readonly sessions: number }>;
  readonly failures: readonly TlsFailureRow[];
  readonly reporters: ReadonlyArray<{ readonly org: string; readonly reports: number; readonly sessions: number }>;
  /** Some session failed: peers could not set up the TLS this policy asks of them. */
  readonly flagged: boolean;
  readonly begin: number;
  readonly end: number;
}

export interface TlsRefused {
  readonly at: number;
  readonly from: string;
  readonly file: string;
  readonly reason: string;
}

export interface TlsReportSummary {
  readonly since: number;
  readonly policies: readonly TlsPolicySummary[];
  readonly refused: readonly TlsRefused[];
}

async function* storedValues<T>(store: Store, prefix: string): AsyncGenerator<T> {
  const seen = new Set<string>();
  for await (const key of store.scan(prefix)) {
    if (seen.has(key)) continue;
    seen.add(key);
    const text = await store.get(key);
    if (text) yield JSON.parse(text) as T;
  }
}

/** Every stored TLS-RPT report whose period ended at or after `since` (ms), summed per policy domain and type. */
export async function summarizeTlsReports(store: Store, o: { readonly since: number; readonly domain?: string; readonly top?: number }): Promise<TlsReportSummary> {
  const want = o.domain?.toLowerCase().replace(/\.$/, '');
  type Acc = { reports: number; successful: number; failed: number; begin: number; end: number; types: Map<string, number>; rows: Map<string, { row: Omit<TlsFailureRow, 'reporters' | 'sessions' | 'hint'>; sessions: number; reporters: Set<string> }>; orgs: Map<string, { reports: number; sessions: number }> };
  const acc = new Map<string, Acc>();
  for await (const r of storedValues<StoredTlsReport>(store, TLS_REPORT_PREFIX)) {
    if (r.end < o.since) continue;
    for (const p of r.policies) {
      if (want !== undefined && p.domain !== want) continue;
      const key = `${p.domain}\t${p.type}`;
      let a = acc.get(key);
      if (!a) acc.set(key, (a = { reports: 0, successful: 0, failed: 0, begin: r.begin, end: r.end, types: new Map(), rows: new Map(), orgs: new Map() }));
      a.reports++;
      a.successful += p.successful;
      a.failed += p.failed;
      a.begin = Math.min(a.begin, r.begin);
      a.end = Math.max(a.end, r.end);
      const org = a.orgs.get(r.org) ?? { reports: 0, sessions: 0 };
      a.orgs.set(r.org, org);
      org.reports++;
      org.sessions += p.successful + p.failed;
      for (const f of p.failures) {
        a.types.set(f.resultType, (a.types.get(f.resultType) ?? 0) + f.sessions);
        const rowKey = [f.resultType, f.sendingMtaIp, f.receivingMx, f.receivingIp].join('\t');
        const row = a.rows.get(rowKey) ?? { row: { resultType: f.resultType, ...(f.sendingMtaIp ? { sendingMtaIp: f.sendingMtaIp } : {}), ...(f.receivingMx ? { receivingMx: f.receivingMx } : {}), ...(f.receivingIp ? { receivingIp: f.receivingIp } : {}) }, sessions: 0, reporters: new Set<string>() };
        a.rows.set(rowKey, row);
        row.sessions += f.sessions;
        row.reporters.add(r.org);
      }
    }
  }
  const refused: TlsRefused[] = [];
  for await (const e of storedValues<TlsRefused>(store, TLS_REFUSED_PREFIX)) if (e.at >= o.since) refused.push(e);
  refused.sort((x, y) => y.at - x.at);
  const policies = [...acc.entries()]
    .sort(([x], [y]) => x.localeCompare(y))
    .map(([key, a]): TlsPolicySummary => {
      const [domain = '', type = ''] = key.split('\t');
      return {
        domain,
        type,
        reports: a.reports,
        successful: a.successful,
        failed: a.failed,
        resultTypes: [...a.types.entries()].map(([resultType, sessions]) => ({ resultType, sessions })).sort((x, y) => y.sessions - x.sessions || x.resultType.localeCompare(y.resultType)),
        failures: [...a.rows.values()]
          .map((r) => ({ ...r.row, sessions: r.sessions, reporters: [...r.reporters].sort(), hint: failureHint(r.row.resultType) }))
          .sort((x, y) => y.sessions - x.sessions || x.resultType.localeCompare(y.resultType))
          .slice(0, o.top ?? 20),
        reporters: [...a.orgs.entries()].map(([org, v]) => ({ org, ...v })).sort((x, y) => y.sessions - x.sessions || x.org.localeCompare(y.org)),
        flagged: a.failed > 0,
        begin: a.begin,
        end: a.end,
      };
    });
  return { since: o.since, policies, refused: refused.slice(0, 20) };
}
