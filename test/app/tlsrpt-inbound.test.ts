// The pure part of reading received TLS-RPT reports (RFC 8460 §4.4) on hostile input: a gzip bomb
// stops at maxJsonSize, each wrong field is named with its path, details past maxFailureDetails are
// summed not kept, over-long strings are cut, and addresses that are not IPs are dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { ReportError } from '../../src/app/dmarc-inbound.ts';
import { isTlsReportAttachment, parseTlsReport, unpackTls } from '../../src/app/tlsrpt-inbound.ts';

const LIMITS = { maxAttachmentSize: 2 ** 16, maxJsonSize: 2 ** 16, maxPolicies: 2, maxFailureDetails: 2 };

const detail = (n: number, extra: Record<string, unknown> = {}) => ({ 'result-type': 'certificate-expired', 'sending-mta-ip': '192.0.2.7', 'receiving-mx-hostname': 'MX.Example.ORG.', 'failed-session-count': n, ...extra });
const policy = (details: unknown[], summary: Record<string, unknown> = { 'total-successful-session-count': 10, 'total-failure-session-count': 3 }) => ({
  policy: { 'policy-type': 'sts', 'policy-string': ['version: STSv1', 'mode: enforce'], 'policy-domain': 'Example.ORG.', 'mx-host': ['mx.example.org'] },
  summary,
  'failure-details': details,
});
const report = (over: Record<string, unknown> = {}) => ({
  'organization-name': 'Big Mail Inc.',
  'date-range': { 'start-datetime': '2026-12-01T00:00:00Z', 'end-datetime': '2026-12-01T23:59:59Z' },
  'contact-info': 'tlsrpt@big.example',
  'report-id': '2026-12-01T00:00:00Z_example.org',
  policies: [policy([detail(1)])],
  ...over,
});
const parse = (doc: unknown) => parseTlsReport('r.json', JSON.stringify(doc), LIMITS);
const refused = (doc: unknown, why: RegExp) => assert.throws(() => parse(doc), (e: unknown) => e instanceof ReportError && why.test(e.message) && e.file === 'r.json', String(why));

test('a well-formed report: domain and MX lower-cased without the root dot, times in ms, counts kept', () => {
  const r = parse(report());
  assert.deepEqual([r.org, r.reportId, r.contact], ['Big Mail Inc.', '2026-12-01T00:00:00Z_example.org', 'tlsrpt@big.example']);
  assert.equal(r.begin, Date.parse('2026-12-01T00:00:00Z'));
  const p = r.policies[0]!;
  assert.deepEqual([p.type, p.domain, p.successful, p.failed, p.detailsDropped], ['sts', 'example.org', 10, 3, 0]);
  assert.deepEqual(p.failures, [{ resultType: 'certificate-expired', sendingMtaIp: '192.0.2.7', receivingMx: 'mx.example.org', sessions: 1 }]);
});

test('bounds: details past maxFailureDetails are summed, more policies than maxPolicies is refused, strings are cut, non-IPs dropped', () => {
  const p = parse(report({ policies: [policy([detail(1), detail(2), detail(4), detail(8)])] })).policies[0]!;
  assert.equal(p.failures.length, 2);
  assert.equal(p.detailsDropped, 12);
  refused(report({ policies: [policy([]), policy([]), policy([])] }), /3 policies, over tlsReports\.read\.maxPolicies \(2\)/);
  const long = parse(report({ 'organization-name': 'x'.repeat(10_000), policies: [policy([detail(1, { 'sending-mta-ip': 'not-an-ip', 'receiving-ip': '2001:db8::25', 'result-type': 'y'.repeat(500) })])] }));
  assert.equal(long.org.length, 255);
  const f = long.policies[0]!.failures[0]!;
  assert.equal(f.sendingMtaIp, undefined);
  assert.equal(f.receivingIp, '2001:db8::25');
  assert.equal(f.resultType.length, 64);
  assert.equal(parse(report({ policies: [{ policy: { 'policy-domain': 'a.example' }, summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 0 } }] })).policies[0]!.type, 'no-policy-found');
});

test('each wrong field is named: not JSON, no policies, no org or id, bad dates, counts that are not whole numbers', () => {
  assert.throws(() => parseTlsReport('r.json', '{"policies": [', LIMITS), /not JSON/);
  refused({ hello: 'world' }, /no "policies" list: not a TLS-RPT report/);
  refused(report({ 'report-id': '' }), /lacks organization-name or report-id/);
  refused(report({ 'date-range': { 'start-datetime': 'yesterday', 'end-datetime': '2026-12-01T23:59:59Z' } }), /start-datetime "yesterday" is not an RFC 3339 date-time/);
  refused(report({ 'date-range': { 'start-datetime': '2026-12-02T00:00:00Z', 'end-datetime': '2026-12-01T00:00:00Z' } }), /ends before it starts/);
  refused(report({ policies: [policy([detail(-1)])] }), /policies\[0\]\.failure-details\[0\]\.failed-session-count is -1, not a whole number/);
  refused(report({ policies: [policy([], { 'total-successful-session-count': '7', 'total-failure-session-count': 0 })] }), /policies\[0\]\.summary\.total-successful-session-count is "7"/);
  refused(report({ policies: [{ policy: {}, summary: {} }] }), /policies\[0\] lacks policy-domain/);
});

test('the attachment: gzip or plain JSON by its first bytes; a gzip bomb stops at maxJsonSize; too large is refused', () => {
  const json = JSON.stringify(report());
  assert.equal(unpackTls('r.json.gz', gzipSync(json), LIMITS), json);
  assert.equal(unpackTls('r.json', Buffer.from(`\uFEFF${json}`), LIMITS), json);
  const bomb = gzipSync(Buffer.alloc(10 * 2 ** 20, 0x20));
  assert.ok(bomb.length < LIMITS.maxAttachmentSize);
  assert.throws(() => unpackTls('bomb.json.gz', bomb, LIMITS), (e: unknown) => e instanceof ReportError && e.file === 'bomb.json.gz' && /gunzips past tlsReports\.read\.maxJsonSize .* decompression bomb/.test(e.message));
  assert.throws(() => unpackTls('bad.json.gz', Buffer.from([0x1f, 0x8b, 1, 2, 3]), LIMITS), /not valid gzip/);
  assert.throws(() => unpackTls('big.json', Buffer.alloc(LIMITS.maxAttachmentSize + 1), LIMITS), /over tlsReports\.read\.maxAttachmentSize/);
  assert.ok(isTlsReportAttachment('application/tlsrpt+gzip', 'x.bin'));
  assert.ok(isTlsReportAttachment('application/octet-stream', 'big.example!example.org!1!2.json.gz'));
  assert.ok(!isTlsReportAttachment('application/zip', 'report.zip'));
});
