// DMARC aggregate reports (RFC 7489 §7.2): the job that, once a reporting period has ended, turns
// the counted evaluations (checks/lib/dmarc-record.ts) into appendix C's XML per sender domain,
// gzips it and queues it to each `rua` mailto: address that passes the external-destination check
// (§7.1) and the URI's size limit. The mail leaves through the normal queue (DKIM-signed by the
// router when keys are configured). The store remembers what was sent, so a restart or a second
// node sends nothing twice.
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { XMLBuilder } from 'fast-xml-parser';
import { getDomain } from 'tldts';
import type { Logger } from '../observe/log.ts';
import type { Store } from '../store/store.ts';
import type { EnvelopeRecipient } from '../queue/envelope.ts';
import { DMARC_REPORT_LISTENER, queueGenerated, type SpoolBegin } from '../queue/generated.ts';
import { AGG_PREFIX, parseRowField, policyKey, sentKey, type DmarcEvaluation, type PublishedPolicy } from '../checks/lib/dmarc-record.ts';
import { base64Lines, reportHeaders } from '../delivery/report-mail.ts';

export interface AggregateMeta {
  readonly organization: string;
  readonly email: string;
  readonly reportId: string;
  /** Seconds since the epoch, as the schema wants them. */
  readonly begin: number;
  readonly end: number;
}

const SPF_RESULTS = new Set(['none', 'neutral', 'pass', 'fail', 'softfail', 'temperror', 'permerror']);
const DKIM_RESULTS = new Set(['none', 'pass', 'fail', 'policy', 'neutral', 'temperror', 'permerror']);

/** The aggregate report of RFC 7489 appendix C for one policy domain. */
export function aggregateXml(meta: AggregateMeta, policy: PublishedPolicy, rows: ReadonlyArray<readonly [DmarcEvaluation, number]>): string {
  const record = rows.map(([r, count]) => ({
    row: {
      source_ip: r.sourceIp,
      count,
      policy_evaluated: { disposition: r.disposition, dkim: r.dkimAligned ? 'pass' : 'fail', spf: r.spfAligned ? 'pass' : 'fail' },
    },
    identifiers: { header_from: r.headerFrom },
    auth_results: {
      ...(r.dkim.length > 0 ? { dkim: r.dkim.map((d) => ({ domain: d.domain, ...(d.selector ? { selector: d.selector } : {}), result: DKIM_RESULTS.has(d.result) ? d.result : 'temperror' })) } : {}),
      // The schema wants one SPF result at least: "none" for the MAIL FROM domain when SPF did not run.
      spf: r.spf ? { domain: r.spf.domain, scope: 'mfrom', result: SPF_RESULTS.has(r.spf.result) ? r.spf.result : 'temperror' } : { domain: r.envelopeFrom || r.headerFrom, scope: 'mfrom', result: 'none' },
    },
  }));
  const doc = {
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    feedback: {
      version: '1.0',
      report_metadata: { org_name: meta.organization, email: meta.email, report_id: meta.reportId, date_range: { begin: meta.begin, end: meta.end } },
      policy_published: { domain: policy.domain, adkim: policy.adkim, aspf: policy.aspf, p: policy.p, sp: policy.sp, pct: policy.pct },
      record,
    },
  };
  return new XMLBuilder({ ignoreAttributes: false, format: true, suppressEmptyNode: true }).build(doc);
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** A `rua` mailto: URI split into its address and size limit in bytes (RFC 7489 §6.2: "!10m"). */
export function parseRua(uri: string): { address: string; maxBytes?: number } | undefined {
  const m = /^mailto:([^@\s]+@[^@\s!]+)(?:!([0-9]+)([kmgt]?))?$/i.exec(uri.trim());
  if (!m) return undefined;
  let address: string;
  try {
    address = decodeURIComponent(m[1]!);
  } catch {
    return undefined;
  }
  return { address, ...(m[2] ? { maxBytes: Number(m[2]) * UNITS[m[3]!.toLowerCase()]! } : {}) };
}

const orgDomain = (d: string): string => (getDomain(d, { allowPrivateDomains: true }) ?? d).toLowerCase();

/**
 * RFC 7489 §7.1: a destination outside the policy domain's organization must say it wants the
 * reports, with a v=DMARC1 TXT record at `<policy-domain>._report._dmarc.<destination-domain>`.
 */
export async function destinationVerified(policyDomain: string, address: string, resolveTxt: (name: string) => Promise<string[][]>): Promise<boolean> {
  const dest = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  if (orgDomain(dest) === orgDomain(policyDomain)) return true;
  try {
    const txt = (await resolveTxt(`${policyDomain}._report._dmarc.${dest}`)).map((c) => c.join(''));
    return txt.some((t) => /^v=DMARC1\s*(;|$)/i.test(t.trim()));
  } catch {
    return false;
  }
}

/** The report mail (RFC 7489 §7.2.1.1): the subject and file name conventions, the XML gzip'd. */
export function aggregateMessage(o: { from: string; to: string; domain: string; submitter: string; reportId: string; begin: number; end: number; gz: Buffer; date: Date }): Buffer {
  const boundary = `dmarc-${randomBytes(9).toString('base64url')}`;
  // filename = receiver "!" policy-domain "!" begin-timestamp "!" end-timestamp [ "!" unique-id ] "." extension
  const filename = `${o.submitter}!${o.domain}!${o.begin}!${o.end}!${o.reportId.replace(/[^A-Za-z0-9]/g, '')}.xml.gz`;
  const b64 = base64Lines(o.gz);
  const lines = [
    ...reportHeaders(o),
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    'Auto-Submitted: auto-generated',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is a DMARC aggregate report (RFC 7489) from ${o.submitter} for ${o.domain}.`,
    '',
    `--${boundary}`,
    `Content-Type: application/gzip; name="${filename}"`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${filename}"`,
    '',
  ];
  return Buffer.from(`${lines.join('\r\n')}\r\n${b64}\r\n--${boundary}--\r\n`, 'ascii');
}

export interface DmarcJobOptions {
  readonly store: Store;
  readonly dns: { resolveTxt(name: string): Promise<string[][]> };
  readonly spool: SpoolBegin;
  readonly log: Logger;
  /** This server's name: the submitter in subject and file name. */
  readonly hostname: string;
  readonly organization: string;
  /** The report mail's sender and the metadata email. */
  readonly from: string;
  /** Where a report mail to `address` goes (local mailbox or out). */
  readonly route: (address: string) => EnvelopeRecipient[];
}

export interface DmarcReportRun {
  readonly domain: string;
  readonly rua: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** Sends the reports of every period that ended by `now`, once per domain, and forgets their counts. */
export async function sendDmarcReports(o: DmarcJobOptions, now: number): Promise<DmarcReportRun[]> {
  const out: DmarcReportRun[] = [];
  const keys = new Set<string>();
  for await (const k of o.store.scan(AGG_PREFIX)) keys.add(k);
  for (const key of [...keys].sort()) {
    const [start, interval] = key.slice(AGG_PREFIX.length).split(':').map(Number) as [number, number];
    if (!Number.isFinite(start) || !Number.isFinite(interval) || start + interval > now) continue;
    const byDomain = new Map<string, Array<[DmarcEvaluation, number]>>();
    for (const [field, count] of await o.store.hgetall(key)) {
      const parsed = parseRowField(field);
      if (!parsed) continue;
      const list = byDomain.get(parsed.policyDomain) ?? [];
      list.push([parsed.row, count]);
      byDomain.set(parsed.policyDomain, list);
    }
    for (const [domain, rows] of [...byDomain].sort(([a], [b]) => a.localeCompare(b))) {
      if (!(await o.store.setIfAbsent(sentKey(start, domain), String(now), Math.max(3 * interval, 86_400_000)))) continue;
      const raw = await o.store.get(policyKey(start, domain));
      if (!raw) continue;
      const policy = JSON.parse(raw) as PublishedPolicy;
      const reportId = `${start}.${randomBytes(6).toString('hex')}@${o.hostname}`;
      const begin = Math.floor(start / 1000);
      const end = Math.floor((start + interval) / 1000) - 1;
      const gz = gzipSync(aggregateXml({ organization: o.organization, email: o.from, reportId, begin, end }, policy, rows));
      for (const uri of policy.rua) out.push(await sendOne(o, { uri, domain, reportId, begin, end, gz, now }));
      await o.store.del(policyKey(start, domain));
    }
    await o.store.del(key);
  }
  for (const r of out) o.log[r.ok ? 'info' : 'warn']({ event: 'dmarc-report-sent', domain: r.domain, rua: r.rua, ok: r.ok, detail: r.detail }, `DMARC aggregate report for ${r.domain} to ${r.rua}: ${r.detail}`);
  return out;
}

async function sendOne(o: DmarcJobOptions, r: { uri: string; domain: string; reportId: string; begin: number; end: number; gz: Buffer; now: number }): Promise<DmarcReportRun> {
  const base = { domain: r.domain, rua: r.uri };
  const dest = parseRua(r.uri);
  if (!dest) return { ...base, ok: false, detail: 'not a mailto: URI; only mailto: is sent' };
  if (!(await destinationVerified(r.domain, dest.address, (n) => o.dns.resolveTxt(n)))) {
    const at = dest.address.slice(dest.address.lastIndexOf('@') + 1);
    return { ...base, ok: false, detail: `not sent: ${at} does not publish ${r.domain}._report._dmarc.${at} (RFC 7489 §7.1)` };
  }
  const bytes = aggregateMessage({ from: o.from, to: dest.address, domain: r.domain, submitter: o.hostname, reportId: r.reportId, begin: r.begin, end: r.end, gz: r.gz, date: new Date(r.now) });
  if (dest.maxBytes !== undefined && bytes.length > dest.maxBytes) return { ...base, ok: false, detail: `not sent: the report is ${bytes.length} bytes, over the URI's limit of ${dest.maxBytes}` };
  try {
    const id = await queueGenerated(o.spool, { mailFrom: o.from, recipients: o.route(dest.address), client: { address: '127.0.0.1', listener: DMARC_REPORT_LISTENER, sessionId: `dmarc-${r.begin}` }, smtputf8: false, body: '7BIT', noBounce: 'DMARC aggregate report' }, bytes);
    return { ...base, ok: true, detail: `queued as ${id}` };
  } catch (err) {
    return { ...base, ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}
