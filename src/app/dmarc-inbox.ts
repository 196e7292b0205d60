// Keeps the DMARC aggregate reports that arrive at our `rua` (config dmarcReports.read): local
// delivery hands each delivered mail to one of the report addresses to `read`, which stores every
// report once per (org_name, report_id) in the shared store with the retention as TTL, and
// remembers each refused file. `summarizeReports` is what `mailward dmarc report` and the
// dashboard show: per domain, DMARC pass/fail, who reports, and the sources failing alignment —
// how an operator learns that someone sends as their domain.
import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import type { Store } from '../store/store.ts';
import type { EnvelopeRecipient } from '../queue/envelope.ts';
import type { DeliverableMessage, RecipientOutcome, Transport } from '../delivery/transport.ts';
// The parser (mailparser, fast-xml-parser) is loaded at the first report, not on the way to the listener.
import type { AggregateReport, ReadLimits, ReportRow } from './dmarc-inbound.ts';
import { receivedReportKey, type ReportReceipt } from './report-receipt.ts';
import type { TlsReadLimits, TlsReport } from './tlsrpt-inbound.ts';
import { TLS_REFUSED_PREFIX, tlsReportKey, type StoredTlsReport } from './tlsrpt-inbox.ts';
import { ReportAlerts } from './report-alerts.ts';
import type { GuardAlert } from '../guard/alerts.ts';

/** DMARC passes when an aligned identifier passed, DKIM or SPF (RFC 7489 §4.2); policy_evaluated has them aligned already. */
export const rowPasses = (r: Pick<ReportRow, 'dkim' | 'spf'>): boolean => r.dkim === 'pass' || r.spf === 'pass';

export const REPORT_PREFIX = 'dmarc:rua:r:';
export const REFUSED_PREFIX = 'dmarc:rua:e:';

export interface StoredReport extends AggregateReport, ReportReceipt {}

export interface RefusedReport {
  readonly at: number;
  readonly from: string;
  readonly file: string;
  readonly reason: string;
}

/** The addresses read for reports: dmarcReports.read.addresses, else the `rua` that `dns records` prints. */
export function reportAddresses(config: Pick<Config, 'dmarcReports' | 'reports' | 'domains'>): string[] {
  const set = config.dmarcReports.read.addresses ?? (config.reports.address ? [config.reports.address] : config.domains.map((d) => `postmaster@${d}`));
  return [...new Set(set.map((a) => a.toLowerCase()))];
}

/** The addresses read for TLS-RPT reports: tlsReports.read.addresses, else those of the DMARC reports. */
export function tlsReportAddresses(config: Pick<Config, 'dmarcReports' | 'tlsReports' | 'reports' | 'domains'>): string[] {
  return config.tlsReports.read.addresses ? [...new Set(config.tlsReports.read.addresses.map((a) => a.toLowerCase()))] : reportAddresses(config);
}

/** The reader of the reports at our rua as the config asks for it; undefined when both kinds of reading are off. */
export function reportReaderFor(config: Config, d: { readonly store: Store; readonly log: Logger; readonly isOurDomain: (domain: string) => boolean; readonly raise?: (a: GuardAlert) => Promise<void> }): ReportReader | undefined {
  const dm = config.dmarcReports.read;
  const tl = config.tlsReports.read;
  if (!dm.enabled && !tl.enabled) return undefined;
  const addresses = [...new Set([...(dm.enabled ? reportAddresses(config) : []), ...(tl.enabled ? tlsReportAddresses(config) : [])])];
  const alerts = config.reports.alertNewFailures && d.raise ? new ReportAlerts({ store: d.store, log: d.log, raise: d.raise, windowMs: config.reports.alertWindow, clock: Date.now }) : undefined;
  return new ReportReader({
    store: d.store,
    log: d.log,
    addresses,
    limits: dm.enabled ? dm : undefined,
    retentionMs: dm.retention,
    ...(tl.enabled ? { tls: { limits: tl, retentionMs: tl.retention } } : {}),
    ...(alerts ? { alerts } : {}),
    isOurDomain: d.isOurDomain,
    clock: Date.now,
  });
}

const reportKey = (org: string, id: string): string => receivedReportKey(REPORT_PREFIX, org, id);

/** The mail's bytes, or only its first 64 KiB (`whole: false`) when it is larger than `max`. */
async function readCapped(body: () => Readable, max: number): Promise<{ readonly bytes: Buffer; readonly whole: boolean }> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body()) {
    chunks.push(c as Buffer);
    n += (c as Buffer).length;
    if (n > max) return { bytes: Buffer.concat(chunks).subarray(0, 65_536), whole: false };
  }
  return { bytes: Buffer.concat(chunks), whole: true };
}

/** A report mail's subject (RFC 7489 §7.2.1.1: "Report Domain: ... Submitter: ..."). */
const REPORT_SUBJECT = /^subject:[^\r\n]*report[ -]?domain:/im;

export interface ReaderOptions {
  readonly store: Store;
  readonly log: Logger;
  /** The DMARC and the TLS-RPT rua addresses (one list: they are usually the same). */
  readonly addresses: readonly string[];
  /** DMARC reading (dmarcReports.read); undefined when it is off. */
  readonly limits: ReadLimits | undefined;
  readonly retentionMs: number;
  /** TLS-RPT reading (tlsReports.read); undefined when it is off. */
  readonly tls?: { readonly limits: TlsReadLimits; readonly retentionMs: number };
  /** New failing sources are alerted (reports.alertNewFailures). */
  readonly alerts?: ReportAlerts;
  /** Whether a policy domain is one of ours: reports about other domains are refused. */
  readonly isOurDomain: (domain: string) => boolean;
  readonly clock: () => number;
}

export type ReadResult = { readonly file: string; readonly stored: boolean; readonly duplicate?: boolean; readonly reason?: string };

/** Reads the DMARC aggregate and TLS-RPT reports in the mail delivered to our rua addresses. */
export class ReportReader {
  readonly #o: ReaderOptions;
  readonly #addresses: ReadonlySet<string>;

  constructor(o: ReaderOptions) {
    this.#o = o;
    this.#addresses = new Set(o.addresses.map((a) => a.toLowerCase()));
  }

  wants(r: EnvelopeRecipient | undefined): boolean {
    return r !== undefined && (this.#addresses.has(r.address.toLowerCase()) || (r.mailbox !== undefined && this.#addresses.has(r.mailbox.toLowerCase())));
  }

  /** Reads one delivered mail; never rejects (a store outage or a bad file is logged). */
  async read(queueId: string, from: string, body: () => Readable): Promise<ReadResult[]> {
    const { log, limits, tls } = this.#o;
    const out: ReadResult[] = [];
    const refuse = async (kind: 'DMARC' | 'TLS-RPT', file: string, reason: string): Promise<void> => {
      out.push({ file, stored: false, reason });
      log.warn({ event: kind === 'DMARC' ? 'dmarc-report-refused' : 'tlsrpt-report-refused', queueId, from, file, reason }, `${kind} report ${file} from ${from || '<>'} refused: ${reason}`);
      const r: RefusedReport = { at: this.#o.clock(), from, file, reason };
      const key = `${kind === 'DMARC' ? REFUSED_PREFIX : TLS_REFUSED_PREFIX}${r.at}:${randomBytes(4).toString('hex')}`;
      await this.#o.store.set(key, JSON.stringify(r), kind === 'DMARC' ? this.#o.retentionMs : (tls?.retentionMs ?? this.#o.retentionMs)).catch(() => undefined);
    };
    try {
      // base64 makes an attachment 4/3 bigger; the rest of a report mail is small.
      const largest = Math.max(limits?.maxAttachmentSize ?? 0, tls?.limits.maxAttachmentSize ?? 0);
      const mail = await readCapped(body, Math.ceil(largest * 1.4) + 256 * 1024);
      if (!mail.whole) {
        // Other large mail to postmaster is not a report and not worth a warning; a report is.
        const head = mail.bytes.toString('latin1');
        const blank = head.search(/\r?\n\r?\n/);
        if (REPORT_SUBJECT.test(blank < 0 ? head : head.slice(0, blank))) await refuse(/report-type="?tlsrpt/i.test(head) ? 'TLS-RPT' : 'DMARC', '(the whole mail)', `larger than the report size limit (${largest} bytes, dmarcReports.read / tlsReports.read maxAttachmentSize) allows`);
        else log.debug({ event: 'dmarc-report-skipped', queueId, from }, 'a large mail to the DMARC report address without a report subject: not read');
        return out;
      }
      const { parseAggregate, reportFiles, ReportError } = await import('./dmarc-inbound.ts');
      const found = await reportFiles(mail.bytes, limits, tls?.limits);
      for (const e of found.errors) await refuse('DMARC', e.file, e.message);
      for (const e of found.tlsErrors) await refuse('TLS-RPT', e.file, e.message);
      for (const f of limits ? found.files : []) {
        let report: AggregateReport;
        try {
          report = parseAggregate(f.file, f.xml, limits!.maxRecords);
        } catch (err) {
          if (!(err instanceof ReportError)) throw err;
          await refuse('DMARC', f.file, err.message);
          continue;
        }
        if (!this.#o.isOurDomain(report.domain)) {
          await refuse('DMARC', f.file, `it is about ${report.domain}, not one of this server's domains`);
          continue;
        }
        const stored: StoredReport = { ...report, receivedAt: this.#o.clock(), from, file: f.file };
        const fresh = await this.#o.store.setIfAbsent(reportKey(report.org, report.reportId), JSON.stringify(stored), this.#o.retentionMs);
        const messages = report.rows.reduce((a, r) => a + r.count, 0);
        out.push({ file: f.file, stored: fresh, ...(fresh ? {} : { duplicate: true }) });
        log.info(
          { event: fresh ? 'dmarc-report-stored' : 'dmarc-report-duplicate', queueId, from, file: f.file, org: report.org, reportId: report.reportId, domain: report.domain, rows: report.rows.length, messages, rowsDropped: report.rowsDropped },
          fresh ? `DMARC report ${report.reportId} from ${report.org} about ${report.domain}: ${messages} messages in ${report.rows.length} rows` : `DMARC report ${report.reportId} from ${report.org} was stored before; not counted again`,
        );
        if (fresh) await this.#o.alerts?.dmarc(report);
      }
      if (tls && found.tls.length > 0) {
        const { parseTlsReport } = await import('./tlsrpt-inbound.ts');
        for (const f of found.tls) {
          let report: TlsReport;
          try {
            report = parseTlsReport(f.file, f.json, tls.limits);
          } catch (err) {
            if (!(err instanceof ReportError)) throw err;
            await refuse('TLS-RPT', f.file, err.message);
            continue;
          }
          // Only the policies about our domains are kept; a report about none of them is refused.
          const ours = report.policies.filter((p) => this.#o.isOurDomain(p.domain));
          if (ours.length === 0) {
            await refuse('TLS-RPT', f.file, `it is about ${[...new Set(report.policies.map((p) => p.domain))].join(', ') || 'no domain'}, not one of this server's domains`);
            continue;
          }
          report = { ...report, policies: ours };
          const stored: StoredTlsReport = { ...report, receivedAt: this.#o.clock(), from, file: f.file };
          const fresh = await this.#o.store.setIfAbsent(tlsReportKey(report.org, report.reportId), JSON.stringify(stored), tls.retentionMs);
          const failed = ours.reduce((a, p) => a + p.failed, 0);
          const successful = ours.reduce((a, p) => a + p.successful, 0);
          out.push({ file: f.file, stored: fresh, ...(fresh ? {} : { duplicate: true }) });
          log.info(
            { event: fresh ? 'tlsrpt-report-stored' : 'tlsrpt-report-duplicate', queueId, from, file: f.file, org: report.org, reportId: report.reportId, domains: [...new Set(ours.map((p) => p.domain))], successful, failed },
            fresh ? `TLS-RPT report ${report.reportId} from ${report.org}: ${successful} successful and ${failed} failed sessions` : `TLS-RPT report ${report.reportId} from ${report.org} was stored before; not counted again`,
          );
          if (fresh && failed > 0) await this.#o.alerts?.tls(report);
        }
      }
    } catch (err) {
      log.warn({ event: 'dmarc-report-read-failed', queueId, from, err: String(err) }, `a mail to the report address could not be read for reports: ${String(err)}`);
    }
    return out;
  }
}

/** The local transport, reading each mail it delivered to a report address (the mailbox still gets it). */
export function readingReports(inner: Transport, reader: ReportReader): Transport {
  return {
    async deliver(msg: DeliverableMessage, indexes: readonly number[]): Promise<RecipientOutcome[]> {
      const out = await inner.deliver(msg, indexes);
      // Read after the mailbox has it, so a parse never delays or fails the delivery itself; once
      // per mail even with several report recipients (a retry of one is deduplicated by report id).
      if (out.some((o) => o.outcome === 'ok' && reader.wants(msg.envelope.recipients[o.index]))) await reader.read(msg.envelope.id, msg.envelope.mailFrom, msg.body);
      return out;
    },
  };
}

export interface FailingSource extends Pick<ReportRow, 'ip'> {
  readonly messages: number;
  readonly headerFrom: readonly string[];
  readonly reporters: readonly string[];
}

export interface DomainReportSummary extends Pick<AggregateReport, 'domain' | 'begin' | 'end'> {
  readonly reports: number;
  readonly messages: number;
  readonly pass: number;
  readonly fail: number;
  /** Messages the reporters quarantined or rejected. */
  readonly quarantined: number;
  readonly rejected: number;
  readonly reporters: ReadonlyArray<{ readonly org: string; readonly reports: number; readonly messages: number }>;
  /** The source IPs whose mail failed DMARC, most messages first. */
  readonly failingSources: readonly FailingSource[];
}

export interface ReportSummary {
  /** Reports whose period ended at or after this (ms since the epoch). */
  readonly since: number;
  readonly domains: readonly DomainReportSummary[];
  /** Refused report files since then, newest first (at most 20). */
  readonly refused: readonly RefusedReport[];
}

/** Every stored report (and refusal) since `since`, summed per domain. */
export async function summarizeReports(store: Store, o: { readonly since: number; readonly domain?: string; readonly top?: number }): Promise<ReportSummary> {
  const top = o.top ?? 10;
  const want = o.domain?.toLowerCase().replace(/\.$/, '');
  type Acc = { reports: number; messages: number; pass: number; fail: number; quarantined: number; rejected: number; begin: number; end: number; orgs: Map<string, { reports: number; messages: number }>; sources: Map<string, { messages: number; headerFrom: Set<string>; reporters: Set<string> }> };
  const byDomain = new Map<string, Acc>();
  const seen = new Set<string>();
  for await (const key of store.scan(REPORT_PREFIX)) {
    if (seen.has(key)) continue;
    seen.add(key);
    const text = await store.get(key);
    if (!text) continue;
    const r = JSON.parse(text) as StoredReport;
    if (r.end * 1000 < o.since || (want !== undefined && r.domain !== want)) continue;
    let a = byDomain.get(r.domain);
    if (!a) byDomain.set(r.domain, (a = { reports: 0, messages: 0, pass: 0, fail: 0, quarantined: 0, rejected: 0, begin: r.begin, end: r.end, orgs: new Map(), sources: new Map() }));
    a.reports++;
    a.begin = Math.min(a.begin, r.begin);
    a.end = Math.max(a.end, r.end);
    const org = a.orgs.get(r.org) ?? { reports: 0, messages: 0 };
    a.orgs.set(r.org, org);
    org.reports++;
    for (const row of r.rows) {
      a.messages += row.count;
      org.messages += row.count;
      if (row.disposition === 'quarantine') a.quarantined += row.count;
      if (row.disposition === 'reject') a.rejected += row.count;
      if (rowPasses(row)) {
        a.pass += row.count;
        continue;
      }
      a.fail += row.count;
      const s = a.sources.get(row.ip) ?? { messages: 0, headerFrom: new Set<string>(), reporters: new Set<string>() };
      a.sources.set(row.ip, s);
      s.messages += row.count;
      if (row.headerFrom) s.headerFrom.add(row.headerFrom);
      s.reporters.add(r.org);
    }
  }
  const refused: RefusedReport[] = [];
  for await (const key of store.scan(REFUSED_PREFIX)) {
    const text = await store.get(key);
    if (!text) continue;
    const e = JSON.parse(text) as RefusedReport;
    if (e.at >= o.since && !refused.some((x) => x.at === e.at && x.file === e.file)) refused.push(e);
  }
  refused.sort((x, y) => y.at - x.at);
  const domains = [...byDomain.entries()]
    .sort(([x], [y]) => x.localeCompare(y))
    .map(([domain, a]) => ({
      domain,
      reports: a.reports,
      messages: a.messages,
      pass: a.pass,
      fail: a.fail,
      quarantined: a.quarantined,
      rejected: a.rejected,
      begin: a.begin,
      end: a.end,
      reporters: [...a.orgs.entries()].map(([org, v]) => ({ org, ...v })).sort((x, y) => y.messages - x.messages || x.org.localeCompare(y.org)),
      failingSources: [...a.sources.entries()]
        .map(([ip, s]) => ({ ip, messages: s.messages, headerFrom: [...s.headerFrom].sort(), reporters: [...s.reporters].sort() }))
        .sort((x, y) => y.messages - x.messages || x.ip.localeCompare(y.ip))
        .slice(0, top),
    }));
  return { since: o.since, domains, refused: refused.slice(0, 20) };
}
