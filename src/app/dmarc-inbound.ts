// Reading the DMARC aggregate reports other receivers send to our `rua` (RFC 7489 §7.2): the
// report attachments of a mail (gzip, zip or plain XML, named receiver!policy-domain!begin!end
// [!id].xml[.gz|.zip] by §7.2.1.1), unpacked within a size limit, and appendix C's XML turned
// into plain rows. Everything here is untrusted input from the internet: sizes are bounded before
// and during decompression, entities are never expanded, and a malformed report is a ReportError
// naming the file and what is wrong, never a crash.
import { gunzipSync } from 'node:zlib';
import { isIP } from 'node:net';
import { XMLParser } from 'fast-xml-parser';
import { simpleParser } from 'mailparser';
import { readZip, ZipError } from '../core/zip-read.ts';
import { isTlsReportAttachment, unpackTls, type TlsReadLimits } from './tlsrpt-inbound.ts';

export class ReportError extends Error {
  override readonly name = 'ReportError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ReadLimits {
  /** Largest compressed attachment opened. */
  readonly maxAttachmentSize: number;
  /** Largest XML after decompression. */
  readonly maxXmlSize: number;
  /** Most rows kept of one report. */
  readonly maxRecords: number;
}

export interface AuthResult {
  readonly domain: string;
  readonly result: string;
  readonly selector?: string;
}

export interface ReportRow {
  readonly ip: string;
  readonly count: number;
  readonly disposition: string;
  /** The DMARC-aligned results the reporter evaluated (policy_evaluated): pass or fail. */
  readonly dkim: string;
  readonly spf: string;
  readonly headerFrom: string;
  readonly envelopeFrom?: string;
  readonly dkimAuth: readonly AuthResult[];
  readonly spfAuth: readonly AuthResult[];
}

export interface AggregateReport {
  readonly org: string;
  readonly email: string;
  readonly reportId: string;
  /** Seconds since the epoch, as the report has them. */
  readonly begin: number;
  readonly end: number;
  /** policy_published.domain, lower-case. */
  readonly domain: string;
  readonly policy: Readonly<Record<string, string>>;
  readonly rows: readonly ReportRow[];
  /** Rows past maxRecords: counted in `messagesDropped`, not kept. */
  readonly rowsDropped: number;
  readonly messagesDropped: number;
}

/** A report file found in a mail: its name and its XML. */
export interface ReportFile {
  readonly file: string;
  readonly xml: string;
}

const REPORT_TYPES = new Set(['application/zip', 'application/x-zip-compressed', 'application/x-zip', 'application/gzip', 'application/x-gzip', 'application/gzip-compressed', 'text/xml', 'application/xml']);
const REPORT_NAME = /\.(xml|xml\.gz|gz|zip)$/i;

/** The XML inside one attachment, by its first bytes rather than its (often wrong) content type. */
export function unpack(file: string, content: Buffer, limits: ReadLimits): ReportFile[] {
  if (content.length > limits.maxAttachmentSize) throw new ReportError(file, `${content.length} bytes, over dmarcReports.read.maxAttachmentSize (${limits.maxAttachmentSize})`);
  if (content[0] === 0x1f && content[1] === 0x8b) {
    let xml: Buffer;
    try {
      xml = gunzipSync(content, { maxOutputLength: limits.maxXmlSize });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ReportError(file, code === 'ERR_BUFFER_TOO_LARGE' ? `gunzips past dmarcReports.read.maxXmlSize (${limits.maxXmlSize} bytes): refused as a decompression bomb` : `not valid gzip (${code ?? String(err)})`);
    }
    return [{ file, xml: xml.toString('utf8') }];
  }
  if (content.readUInt32LE(0) === 0x04034b50) {
    try {
      return readZip(content, { maxBytes: limits.maxXmlSize })
        .filter((e) => /\.xml$/i.test(e.name))
        .map((e) => ({ file: `${file}/${e.name}`, xml: e.data.toString('utf8') }));
    } catch (err) {
      if (err instanceof ZipError) throw new ReportError(file, /over the limit|past the limit/.test(err.message) ? `${err.message} (dmarcReports.read.maxXmlSize): refused as a decompression bomb` : err.message);
      throw err;
    }
  }
  const text = content.toString('utf8').replace(/^\uFEFF/, '');
  if (/^\s*</.test(text)) {
    if (content.length > limits.maxXmlSize) throw new ReportError(file, `over dmarcReports.read.maxXmlSize (${limits.maxXmlSize} bytes)`);
    return [{ file, xml: text }];
  }
  throw new ReportError(file, 'neither gzip, zip nor XML');
}

/** A TLS-RPT report file found in a mail (RFC 8460 §5.3): its name and its JSON. */
export interface TlsReportFile {
  readonly file: string;
  readonly json: string;
}

export interface MailReports {
  readonly files: ReportFile[];
  readonly tls: TlsReportFile[];
  /** The attachments that looked like DMARC (`errors`) or TLS-RPT (`tlsErrors`) reports but could not be opened. */
  readonly errors: ReportError[];
  readonly tlsErrors: ReportError[];
}

/**
 * The DMARC and TLS-RPT report files of a mail, the mail parsed once. `tlsLimits` undefined: TLS-RPT
 * reading is off and such attachments are passed over; `limits` undefined: likewise for DMARC.
 */
export async function reportFiles(raw: Buffer, limits: ReadLimits | undefined, tlsLimits?: TlsReadLimits): Promise<MailReports> {
  const mail = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  const out: MailReports = { files: [], tls: [], errors: [], tlsErrors: [] };
  for (const a of mail.attachments) {
    const name = a.filename ?? '(unnamed attachment)';
    const type = a.contentType.toLowerCase();
    // First: a TLS-RPT file's ".json.gz" would pass the DMARC test below as gzip.
    const tls = isTlsReportAttachment(type, name);
    try {
      if (tls) {
        if (tlsLimits) out.tls.push({ file: name, json: unpackTls(name, a.content, tlsLimits) });
      } else if (limits && (REPORT_TYPES.has(type) || REPORT_NAME.test(name))) out.files.push(...unpack(name, a.content, limits));
    } catch (err) {
      if (err instanceof ReportError) (tls ? out.tlsErrors : out.errors).push(err);
      else throw err;
    }
  }
  return out;
}

// Entities are never expanded (no billion laughs), attributes are not read (the schema has none
// that matter), namespace prefixes are dropped (some reporters qualify every element).
const parser = new XMLParser({ ignoreAttributes: true, removeNSPrefix: true, processEntities: false, htmlEntities: false, parseTagValue: false, trimValues: true, isArray: (name) => name === 'record' });

type Node = Record<string, unknown>;
const obj = (v: unknown): Node | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Node) : undefined);
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);

function authResults(v: unknown): AuthResult[] {
  return list(v)
    .map(obj)
    .filter((a): a is Node => a !== undefined)
    .map((a) => ({ domain: str(a.domain).toLowerCase(), result: str(a.result).toLowerCase(), ...(str(a.selector) ? { selector: str(a.selector) } : {}) }));
}

/** One aggregate report (RFC 7489 appendix C) as rows; ReportError naming what is missing. */
export function parseAggregate(file: string, xml: string, maxRecords: number): AggregateReport {
  let doc: Node;
  try {
    doc = parser.parse(xml) as Node;
  } catch (err) {
    throw new ReportError(file, `not well-formed XML (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`);
  }
  const fb = obj(doc.feedback);
  if (!fb) throw new ReportError(file, 'no <feedback> element: not a DMARC aggregate report');
  const meta = obj(fb.report_metadata);
  const range = obj(meta?.date_range);
  const pub = obj(fb.policy_published);
  const org = str(meta?.org_name);
  const reportId = str(meta?.report_id);
  const begin = Number(str(range?.begin));
  const end = Number(str(range?.end));
  const domain = str(pub?.domain).toLowerCase().replace(/\.$/, '');
  if (!org || !reportId) throw new ReportError(file, 'report_metadata lacks org_name or report_id');
  if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || end < begin) throw new ReportError(file, `date_range ${str(range?.begin)}..${str(range?.end)} is not two ordered epoch seconds`);
  if (!domain) throw new ReportError(file, 'policy_published lacks the domain');
  const policy: Record<string, string> = {};
  for (const k of ['adkim', 'aspf', 'p', 'sp', 'pct', 'fo']) if (str(pub?.[k])) policy[k] = str(pub?.[k]);
  const rows: ReportRow[] = [];
  let rowsDropped = 0;
  let messagesDropped = 0;
  for (const r of list(fb.record)) {
    const rec = obj(r);
    const row = obj(rec?.row);
    const pe = obj(row?.policy_evaluated);
    const ids = obj(rec?.identifiers);
    const auth = obj(rec?.auth_results);
    const ip = str(row?.source_ip);
    const count = Number(str(row?.count));
    if (!isIP(ip)) throw new ReportError(file, `a record's source_ip ${JSON.stringify(ip.slice(0, 60))} is not an IP address`);
    if (!Number.isSafeInteger(count) || count < 0) throw new ReportError(file, `the record of ${ip} has count ${JSON.stringify(str(row?.count).slice(0, 30))}, not a whole number`);
    if (rows.length >= maxRecords) {
      rowsDropped++;
      messagesDropped += count;
      continue;
    }
    const envelopeFrom = str(ids?.envelope_from).toLowerCase();
    rows.push({
      ip,
      count,
      disposition: str(pe?.disposition).toLowerCase() || 'none',
      dkim: str(pe?.dkim).toLowerCase() || 'fail',
      spf: str(pe?.spf).toLowerCase() || 'fail',
      headerFrom: str(ids?.header_from).toLowerCase(),
      ...(envelopeFrom ? { envelopeFrom } : {}),
      dkimAuth: authResults(auth?.dkim),
      spfAuth: authResults(auth?.spf),
    });
  }
  return { org, email: str(meta?.email), reportId, begin, end, domain, policy, rows, rowsDropped, messagesDropped };
}

