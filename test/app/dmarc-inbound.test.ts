// The pure parts of reading received DMARC reports, on hostile input: entities are never expanded,
// a zip whose directory claims more than the limit is refused before inflating, a damaged entry
// (CRC) and encrypted or unknown methods are refused, rows past maxRecords are counted not kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readZip } from '../../src/core/zip-read.ts';
import { parseAggregate, ReportError, unpack } from '../../src/app/dmarc-inbound.ts';
import { zipOf } from '../harness/zip.ts';

const LIMITS = { maxAttachmentSize: 2 ** 20, maxXmlSize: 2 ** 20, maxRecords: 2 };
const meta = '<report_metadata><org_name>o.example</org_name><report_id>r1</report_id><date_range><begin>100</begin><end>200</end></date_range></report_metadata><policy_published><domain>Example.ORG.</domain><p>reject</p></policy_published>';
const rec = (ip: string, n: number) => `<record><row><source_ip>${ip}</source_ip><count>${n}</count><policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.org</header_from></identifiers><auth_results><dkim><domain>a.example</domain><result>fail</result></dkim><dkim><domain>b.example</domain><result>pass</result></dkim><spf><domain>x.example</domain><result>softfail</result></spf></auth_results></record>`;

test('entities stay unexpanded: a billion-laughs DOCTYPE is only text', () => {
  const laughs = '<!DOCTYPE f [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>';
  const r = parseAggregate('f.xml', `<?xml version="1.0"?>${laughs}<feedback>${meta.replace('o.example', '&c;')}</feedback>`, 10);
  assert.equal(r.org, '&c;');
});

test('rows: domain lower-cased, several DKIM results kept, rows past maxRecords counted', () => {
  const r = parseAggregate('f.xml', `<feedback>${meta}${rec('192.0.2.1', 3)}${rec('2001:db8::1', 4)}${rec('192.0.2.3', 5)}${rec('192.0.2.4', 6)}</feedback>`, 2);
  assert.equal(r.domain, 'example.org');
  assert.deepEqual(r.rows.map((x) => `${x.ip}=${x.count}`), ['192.0.2.1=3', '2001:db8::1=4']);
  assert.deepEqual([r.rowsDropped, r.messagesDropped], [2, 11]);
  assert.deepEqual(r.rows[0]!.dkimAuth.map((d) => `${d.domain}:${d.result}`), ['a.example:fail', 'b.example:pass']);
  assert.throws(() => parseAggregate('f.xml', `<feedback>${meta}${rec('not-an-ip', 1)}</feedback>`, 2), /source_ip "not-an-ip" is not an IP address/);
  assert.throws(() => parseAggregate('f.xml', '<html><body>hi</body></html>', 2), /no <feedback> element/);
});

test('zip: size claimed over the limit, damaged data, unknown method, not a zip', () => {
  const data = Buffer.from(`<feedback>${meta}</feedback>`);
  assert.equal(readZip(zipOf('a.xml', data), { maxBytes: 1000 })[0]!.data.toString(), data.toString());
  assert.throws(() => readZip(zipOf('a.xml', data, 5_000_000), { maxBytes: 1000 }), /a\.xml: 5000000 bytes uncompressed, over the limit of 1000/);
  const damaged = zipOf('a.xml', data);
  damaged.writeUInt32LE(0xdeadbeef, damaged.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 16);
  assert.throws(() => readZip(damaged, { maxBytes: 1000 }), /CRC-32 does not match/);
  const other = zipOf('a.xml', data);
  other.writeUInt16LE(12, other.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 10);
  assert.throws(() => readZip(other, { maxBytes: 1000 }), /compression method 12 is not read/);
  assert.throws(() => unpack('x.zip', Buffer.from('PK\x03\x04 and then nothing useful at all........'), LIMITS), (e: unknown) => e instanceof ReportError && /no end of central directory/.test(e.message));
  assert.throws(() => unpack('x.bin', Buffer.from('MZ\x90\x00'), LIMITS), /neither gzip, zip nor XML/);
  assert.throws(() => unpack('x.gz', Buffer.alloc(LIMITS.maxAttachmentSize + 1), LIMITS), /over dmarcReports\.read\.maxAttachmentSize/);
});
