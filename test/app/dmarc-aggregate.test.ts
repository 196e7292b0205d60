// The pure parts of the DMARC report job: rua URIs with size limits, the §7.1 destination check,
// and the XML rows when SPF did not run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XMLParser } from 'fast-xml-parser';
import { aggregateXml, destinationVerified, parseRua } from '../../src/app/dmarc-aggregate.ts';
import { publishedPolicy } from '../../src/checks/lib/dmarc-record.ts';

test('rua mailto: URIs: address and size limit (RFC 7489 §6.2)', () => {
  assert.deepEqual(parseRua('mailto:d@example.net'), { address: 'd@example.net' });
  assert.deepEqual(parseRua('mailto:d@example.net!10m'), { address: 'd@example.net', maxBytes: 10 * 2 ** 20 });
  assert.deepEqual(parseRua('mailto:d@example.net!500'), { address: 'd@example.net', maxBytes: 500 });
  assert.equal(parseRua('https://example.net/r'), undefined);
  assert.deepEqual(publishedPolicy('Example.COM', 'v=DMARC1; p=reject; rua=mailto:a@example.com, https://x, mailto:b@example.net!1k')?.rua, ['mailto:a@example.com', 'mailto:b@example.net!1k']);
  assert.equal(publishedPolicy('example.com', 'v=DMARC1; p=reject'), undefined, 'no rua: nothing to count');
});

test('external destinations need <domain>._report._dmarc.<dest> (RFC 7489 §7.1); the same organization does not', async () => {
  const asked: string[] = [];
  const txt = (records: Record<string, string[]>) => (name: string) => {
    asked.push(name);
    const r = records[name];
    return r ? Promise.resolve(r.map((s) => [s])) : Promise.reject(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }));
  };
  assert.equal(await destinationVerified('mail.example.com', 'dmarc@reports.example.com', txt({})), true);
  assert.deepEqual(asked, []);
  assert.equal(await destinationVerified('example.com', 'r@vendor.example', txt({})), false);
  assert.equal(await destinationVerified('example.com', 'r@vendor.example', txt({ 'example.com._report._dmarc.vendor.example': ['v=spf1 -all'] })), false);
  assert.equal(await destinationVerified('example.com', 'r@vendor.example', txt({ 'example.com._report._dmarc.vendor.example': ['v=DMARC1'] })), true);
});

test('a row without an SPF result still carries the one spf element the schema asks for', () => {
  const policy = publishedPolicy('example.com', 'v=DMARC1; p=none; rua=mailto:a@example.com')!;
  const xml = aggregateXml({ organization: 'o', email: 'e@o', reportId: 'r1', begin: 1, end: 2 }, policy, [
    [{ sourceIp: '192.0.2.1', headerFrom: 'example.com', envelopeFrom: '', disposition: 'none', dkimAligned: true, spfAligned: false, dkim: [{ domain: 'example.com', selector: 's1', result: 'pass' }] }, 3],
  ]);
  const rec = (new XMLParser().parse(xml) as { feedback: { record: { row: { count: number }; auth_results: Record<string, unknown> } } }).feedback.record;
  assert.equal(rec.row.count, 3);
  assert.deepEqual(rec.auth_results, { dkim: { domain: 'example.com', selector: 's1', result: 'pass' }, spf: { domain: 'example.com', scope: 'mfrom', result: 'none' } });
});
