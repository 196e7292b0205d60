// TLS-RPT (RFC 8460): per policy domain and UTC day, the counts of successful and failed TLS
// sessions under MTA-STS, kept in the store; and the daily job that sends each domain that
// publishes `_smtp._tls` its JSON report, gzip'd, by mail through the queue (§5.3) or HTTPS POST
// (§5.4). Counting never delays or fails a delivery.
import { gzipSync } from 'node:zlib';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../observe/log.ts';
import type { Store } from '../../store/store.ts';
import type { EnvelopeRecipient } from '../../queue/envelope.ts';
import { queueGenerated, TLS_REPORT_LISTENER, type SpoolBegin } from '../../queue/generated.ts';
import { tagList } from '../../core/mta-sts.ts';
import type { TlsFailureType } from '../smtp-client.ts';
import { policyLines, type CachedPolicy, type StsFetchFailure } from './mta-sts.ts';
import { base64Lines, reportHeaders } from '../report-mail.ts';

export type TlsResult = 'success' | TlsFailureType | StsFetchFailure;

export interface TlsOutcome {
  /** The policy domain: the recipient domain. */
  readonly domain: string;
  /** The policy that applied; none for a policy that could not be fetched. */
  readonly policy?: CachedPolicy;
  /** A DANE outcome: the host's TLSA records (policy-type "tlsa", RFC 8460 §4.4). */
  readonly tlsa?: readonly string[];
  readonly result: TlsResult;
  readonly mxHost?: string;
  readonly address?: string;
}

export interface TlsOutcomeRecorder {
  record(o: TlsOutcome): void;
}

/** Kept a little past the day, so a late or repeated report job still finds it. */
const KEEP_MS = 4 * 86_400_000;
const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const DOMAINS = (d: string): string => `tlsrpt:domains:${d}`;
const COUNTS = (d: string, domain: string): string => `tlsrpt:counts:${d}:${domain}`;
const POLICY = (d: string, domain: string): string => `tlsrpt:policy:${d}:${domain}`;
const SENT = (d: string, domain: string): string => `tlsrpt:sent:${d}:${domain}`;

/** Counts outcomes in the store (one hash per domain and day). */
export class StoreTlsCounter implements TlsOutcomeRecorder {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #clock: () => number;
  #pending: Promise<unknown> = Promise.resolve();

  constructor(o: { readonly store: Store; readonly log: Logger; readonly clock?: () => number }) {
    this.#store = o.store;
    this.#log = o.log;
    this.#clock = o.clock ?? Date.now;
  }

  record(o: TlsOutcome): void {
    const d = day(this.#clock());
    const field = o.result === 'success' ? 'success' : ['failure', o.result, o.mxHost ?? '', o.address ?? ''].join('\t');
    const work = (async () => {
      await this.#store.sadd(DOMAINS(d), [o.domain], KEEP_MS);
      await this.#store.hincrMany(COUNTS(d, o.domain), [[field, 1]], KEEP_MS);
      const policy = o.tlsa ? { type: 'tlsa', lines: [...o.tlsa], mx: o.mxHost ? [o.mxHost] : [] } : o.policy ? { type: 'sts', lines: policyLines(o.policy.text), mx: o.policy.mx } : { type: 'no-policy-found', lines: [], mx: [] };
      await this.#store.set(POLICY(d, o.domain), JSON.stringify(policy), KEEP_MS);
    })().catch((err: unknown) => this.#log.warn({ event: 'tlsrpt-count-failed', domain: o.domain, err: String(err) }, 'cannot count a TLS-RPT outcome'));
    this.#pending = this.#pending.then(() => work);
  }

  /** Resolves when every count recorded so far is written (tests, shutdown). */
  flushed(): Promise<unknown> {
    return this.#pending;
  }
}

export interface ReportInput {
  readonly day: string;
  readonly domain: string;
  readonly organization: string;
  readonly contact: string;
  readonly reportId: string;
  readonly policy: { readonly type: string; readonly lines: readonly string[]; readonly mx: readonly string[] };
  readonly counts: ReadonlyMap<string, number>;
}

/** The report object of RFC 8460 §4.4. */
export function buildReport(r: ReportInput): Record<string, unknown> {
  let success = 0;
  let failures = 0;
  const details: Array<Record<string, unknown>> = [];
  for (const [field, n] of r.counts) {
    if (field === 'success') {
      success += n;
      continue;
    }
    const [, type = 'validation-failure', mx = '', ip = ''] = field.split('\t');
    failures += n;
    details.push({ 'result-type': type, ...(ip ? { 'receiving-ip': ip } : {}), ...(mx ? { 'receiving-mx-hostname': mx } : {}), 'failed-session-count': n });
  }
  return {
    'organization-name': r.organization,
    'date-range': { 'start-datetime': `${r.day}T00:00:00Z`, 'end-datetime': `${r.day}T23:59:59Z` },
    'contact-info': r.contact,
    'report-id': r.reportId,
    policies: [
      {
        policy: { 'policy-type': r.policy.type, ...(r.policy.lines.length > 0 ? { 'policy-string': r.policy.lines } : {}), 'policy-domain': r.domain, ...(r.policy.mx.length > 0 ? { 'mx-host': r.policy.mx } : {}) },
        summary: { 'total-successful-session-count': success, 'total-failure-session-count': failures },
        ...(details.length > 0 ? { 'failure-details': details } : {}),
      },
    ],
  };
}

/** The `rua` URIs of the one v=TLSRPTv1 record among a name's TXT strings (RFC 8460 §3). */
export function ruaOf(txt: readonly string[]): string[] {
  const recs = txt.filter((t) => /^v=TLSRPTv1\s*(;|$)/.test(t));
  if (recs.length !== 1) return [];
  return (tagList(recs[0]!).get('rua') ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => /^(mailto:[^@\s]+@[^@\s]+|https:\/\/\S+)$/i.test(u));
}

export interface ReportJobOptions {
  readonly store: Store;
  readonly dns: { resolveTxt(name: string): Promise<string[][]> };
  readonly spool: SpoolBegin;
  readonly log: Logger;
  /** This server's name: the report's organization and submitter. */
  readonly hostname: string;
  /** The From address and contact-info (RFC 8460 §5.3). */
  readonly from: string;
  /** Where a report mail to `address` goes (local mailbox or out). */
  readonly route: (address: string) => EnvelopeRecipient[];
  /** Trusted CAs for https: POSTs. */
  readonly ca: readonly string[];
  readonly timeoutMs?: number;
  readonly clock?: () => number;
}

export interface ReportRun {
  readonly domain: string;
  readonly rua: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** The report mail (RFC 8460 §5.3): multipart/report; report-type="tlsrpt" with the gzip'd JSON. */
export function reportMessage(o: { from: string; to: string; domain: string; submitter: string; reportId: string; day: string; gz: Buffer; date: Date }): Buffer {
  const boundary = `tlsrpt-${randomBytes(9).toString('base64url')}`;
  const start = Date.parse(`${o.day}T00:00:00Z`) / 1000;
  const end = start + 86_399;
  // §5.3: filename = sender "!" policy-domain "!" begin-timestamp "!" end-timestamp [ "!" unique-id ] ".json.gz".
  const filename = `${o.submitter}!${o.domain}!${start}!${end}!${o.reportId.replace(/[^A-Za-z0-9._-]/g, '')}.json.gz`;
  const b64 = base64Lines(o.gz);
  const lines = [
    ...reportHeaders(o),
    `TLS-Report-Domain: ${o.domain}`,
    `TLS-Report-Submitter: ${o.submitter}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    'Auto-Submitted: auto-generated',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is an aggregate TLS report (RFC 8460) from ${o.submitter} for ${o.domain}, ${o.day}.`,
    '',
    `--${boundary}`,
    `Content-Type: application/tlsrpt+gzip; name="${filename}"`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${filename}"`,
    '',
  ];
  return Buffer.from(`${lines.join('\r\n')}\r\n${b64}\r\n--${boundary}--\r\n`, 'ascii');
}

function post(url: string, body: Buffer, ca: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'POST', headers: { 'content-type': 'application/tlsrpt+gzip', 'content-length': body.length }, ca: [...ca], rejectUnauthorized: true, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      // §5.4: a 2xx is success; anything else is a failed submission.
      if (res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300) resolve(`HTTP ${res.statusCode}`);
      else reject(new Error(`HTTP ${res.statusCode ?? '?'}`));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends the reports of UTC day `reportDay` (default: yesterday) once per domain, even across nodes. */
export async function sendTlsReports(o: ReportJobOptions, reportDay?: string): Promise<ReportRun[]> {
  const clock = o.clock ?? Date.now;
  const d = reportDay ?? day(clock() - 86_400_000);
  const out: ReportRun[] = [];
  for (const domain of (await o.store.smembers(DOMAINS(d))).sort()) {
    if (!(await o.store.setIfAbsent(SENT(d, domain), String(clock()), KEEP_MS))) continue;
    let rua: string[] = [];
    try {
      rua = ruaOf((await o.dns.resolveTxt(`_smtp._tls.${domain}`)).map((c) => c.join('')));
    } catch {
      // No record (or no answer): the domain asked for no reports.
    }
    if (rua.length === 0) continue;
    const policy = JSON.parse((await o.store.get(POLICY(d, domain))) ?? '{"type":"no-policy-found","lines":[],"mx":[]}') as ReportInput['policy'];
    const reportId = `${d}.${randomBytes(6).toString('hex')}@${o.hostname}`;
    const report = buildReport({ day: d, domain, organization: o.hostname, contact: o.from, reportId, policy, counts: await o.store.hgetall(COUNTS(d, domain)) });
    const gz = gzipSync(JSON.stringify(report));
    for (const uri of rua) {
      try {
        if (uri.toLowerCase().startsWith('mailto:')) {
          const to = decodeURIComponent(uri.slice('mailto:'.length).split('?')[0]!);
          const bytes = reportMessage({ from: o.from, to, domain, submitter: o.hostname, reportId, day: d, gz, date: new Date(clock()) });
          const id = await queueGenerated(o.spool, { mailFrom: o.from, recipients: o.route(to), client: { address: '127.0.0.1', listener: TLS_REPORT_LISTENER, sessionId: `tlsrpt-${d}` }, smtputf8: false, body: '7BIT', noBounce: 'TLS-RPT report' }, bytes);
          out.push({ domain, rua: uri, ok: true, detail: `queued as ${id}` });
        } else {
          out.push({ domain, rua: uri, ok: true, detail: await post(uri, gz, o.ca, o.timeoutMs ?? 60_000) });
        }
      } catch (err) {
        out.push({ domain, rua: uri, ok: false, detail: err instanceof Error ? err.message : String(err) });
      }
    }
  }
  for (const r of out) o.log[r.ok ? 'info' : 'warn']({ event: 'tlsrpt-sent', domain: r.domain, rua: r.rua, ok: r.ok, detail: r.detail }, `TLS-RPT report for ${r.domain} to ${r.rua}: ${r.detail}`);
  return out;
}
