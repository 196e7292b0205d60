// Reading the TLS-RPT reports other senders mail to the `rua` of our `_smtp._tls` record (RFC
// 8460): the `application/tlsrpt+gzip` or `application/tlsrpt+json` attachment of §5.3 opened
// within a size limit (the gzip output is bounded by zlib itself, so a bomb stops at the limit),
// and §4's JSON checked field by field into plain policies and failure details, with bounds on
// how many of each are kept. Untrusted input: a malformed report is a ReportError naming the file
// and what is wrong, never a crash. Loaded lazily with dmarc-inbound.ts (not on serve's way up).
import { gunzipSync } from 'node:zlib';
import { isIP } from 'node:net';
import { ReportError } from './dmarc-inbound.ts';

export interface TlsReadLimits {
  readonly maxAttachmentSize: number;
  /** Largest JSON after gunzip. */
  readonly maxJsonSize: number;
  /** Most policies of one report kept. */
  readonly maxPolicies: number;
  /** Most failure details of one policy kept (the rest are summed into `detailsDropped`). */
  readonly maxFailureDetails: number;
}

export interface TlsFailureDetail {
  readonly resultType: string;
  readonly sendingMtaIp?: string;
  readonly receivingMx?: string;
  readonly receivingIp?: string;
  readonly sessions: number;
  readonly info?: string;
}

export interface TlsPolicyResult {
  /** sts, tlsa or no-policy-found (RFC 8460 §4.4); others as the reporter wrote them. */
  readonly type: string;
  /** policy-domain, lower-case. */
  readonly domain: string;
  readonly mxHost: readonly string[];
  readonly successful: number;
  readonly failed: number;
  readonly failures: readonly TlsFailureDetail[];
  readonly detailsDropped: number;
}

export interface TlsReport {
  readonly org: string;
  readonly contact: string;
  readonly reportId: string;
  /** ms since the epoch. */
  readonly begin: number;
  readonly end: number;
  readonly policies: readonly TlsPolicyResult[];
}

/** Whether an attachment is a TLS-RPT report, by its type (§5.3) or its name (§5.1: .json, .json.gz). */
export const isTlsReportAttachment = (contentType: string, name: string): boolean => /^application\/tlsrpt\+(gzip|json)$/i.test(contentType) || /\.json(\.gz)?$/i.test(name);

/** The JSON text inside one attachment, by its first bytes. */
export function unpackTls(file: string, content: Buffer, limits: TlsReadLimits): string {
  if (content.length > limits.maxAttachmentSize) throw new ReportError(file, `${content.length} bytes, over tlsReports.read.maxAttachmentSize (${limits.maxAttachmentSize})`);
  if (content[0] === 0x1f && content[1] === 0x8b) {
    try {
      return gunzipSync(content, { maxOutputLength: limits.maxJsonSize }).toString('utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ReportError(file, code === 'ERR_BUFFER_TOO_LARGE' ? `gunzips past tlsReports.read.maxJsonSize (${limits.maxJsonSize} bytes): refused as a decompression bomb` : `not valid gzip (${code ?? String(err)})`);
    }
  }
  if (content.length > limits.maxJsonSize) throw new ReportError(file, `over tlsReports.read.maxJsonSize (${limits.maxJsonSize} bytes)`);
  return content.toString('utf8').replace(/^\uFEFF/, '');
}

type Node = Record<string, unknown>;
const obj = (v: unknown): Node | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Node) : undefined);
/** A string field, cut to `max` characters (a hostile report cannot make the store hold megabytes per field). */
const text = (v: unknown, max = 255): string => (typeof v === 'string' ? v.slice(0, max) : '');
const strings = (v: unknown, max: number): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((s): s is string => typeof s === 'string').slice(0, max).map((s) => s.slice(0, 255));

function count(file: string, v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ReportError(file, `${what} is ${JSON.stringify(v)?.slice(0, 30) ?? 'missing'}, not a whole number`);
  return v;
}

function time(file: string, v: unknown, what: string): number {
  const ms = typeof v === 'string' ? Date.parse(v) : Number.NaN;
  if (!Number.isFinite(ms)) throw new ReportError(file, `date-range ${what} ${JSON.stringify(v)?.slice(0, 40) ?? 'missing'} is not an RFC 3339 date-time`);
  return ms;
}

/** One report (RFC 8460 §4.4); ReportError naming the first field that is wrong. */
export function parseTlsReport(file: string, json: string, limits: TlsReadLimits): TlsReport {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    throw new ReportError(file, `not JSON (${err instanceof Error ? err.message.slice(0, 120) : String(err)})`);
  }
  const r = obj(doc);
  if (!r || !Array.isArray(r.policies)) throw new ReportError(file, 'no "policies" list: not a TLS-RPT report (RFC 8460 §4.4)');
  const org = text(r['organization-name']);
  const reportId = text(r['report-id']);
  if (!org || !reportId) throw new ReportError(file, 'lacks organization-name or report-id');
  const range = obj(r['date-range']);
  const begin = time(file, range?.['start-datetime'], 'start-datetime');
  const end = time(file, range?.['end-datetime'], 'end-datetime');
  if (end < begin) throw new ReportError(file, 'date-range ends before it starts');
  if (r.policies.length > limits.maxPolicies) throw new ReportError(file, `${r.policies.length} policies, over tlsReports.read.maxPolicies (${limits.maxPolicies})`);
  const policies = r.policies.map((p, i): TlsPolicyResult => {
    const entry = obj(p);
    const policy = obj(entry?.policy);
    const summary = obj(entry?.summary);
    const domain = text(policy?.['policy-domain']).toLowerCase().replace(/\.$/, '');
    if (!domain) throw new ReportError(file, `policies[${i}] lacks policy-domain`);
    const details = Array.isArray(entry?.['failure-details']) ? entry['failure-details'] : [];
    const failures: TlsFailureDetail[] = [];
    let detailsDropped = 0;
    for (const [j, d] of details.entries()) {
      const f = obj(d);
      const sessions = count(file, f?.['failed-session-count'], `policies[${i}].failure-details[${j}].failed-session-count`);
      if (failures.length >= limits.maxFailureDetails) {
        detailsDropped += sessions;
        continue;
      }
      const ip = (k: string): string | undefined => (isIP(text(f?.[k], 45)) ? text(f?.[k], 45) : undefined);
      const sendingMtaIp = ip('sending-mta-ip');
      const receivingIp = ip('receiving-ip');
      const receivingMx = text(f?.['receiving-mx-hostname']).toLowerCase().replace(/\.$/, '');
      const info = text(f?.['additional-information'], 500) || text(f?.['failure-reason-code'], 500);
      failures.push({ resultType: text(f?.['result-type'], 64) || 'unknown', ...(sendingMtaIp ? { sendingMtaIp } : {}), ...(receivingMx ? { receivingMx } : {}), ...(receivingIp ? { receivingIp } : {}), sessions, ...(info ? { info } : {}) });
    }
    return {
      type: text(policy?.['policy-type'], 32) || 'no-policy-found',
      domain,
      mxHost: strings(policy?.['mx-host'], 20),
      successful: count(file, summary?.['total-successful-session-count'], `policies[${i}].summary.total-successful-session-count`),
      failed: count(file, summary?.['total-failure-session-count'], `policies[${i}].summary.total-failure-session-count`),
      failures,
      detailsDropped,
    };
  });
  return { org, contact: text(r['contact-info']), reportId, begin, end, policies };
}
