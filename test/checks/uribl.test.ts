// What the URI blocklist check looks up (src/spam/uris.ts) and the config it refuses. The lookups
// themselves, over SMTP and a loopback DNS server, are in test/e2e/uribl.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { compileChecks } from '../../src/app/compose.ts';
import { messageUriTargets, refang, uriTargets } from '../../src/spam/uris.ts';

test('uris: defanged schemes and dots are undone', () => {
  assert.equal(refang('hxxps://evil[.]example and hXXp[:]//a(.)b and h**p://x{dot}y and see shop dot example dot com'), 'https://evil.example and http://a.b and http://x.y and see shop.example.com');
});

test('uris: hosts are reduced to the registrable domain, links first, IP links as addresses', () => {
  const t = uriTargets(
    'Go to https://login.secure.bank-verify.co.uk/x, www.shop.example.com, pay-now(.)biz or http://%65vil.com/ — mail x@scam-mail.ru; ' +
      'http://3232235777/ http://192.0.2.9:8080/a http://пример.рф/ http://a.b.blogspot.com/ exa&#46;mple.org',
    ['https://tracker.mailer.example.net/open?id=1', 'mailto:ops@reply.example.org'],
  );
  assert.deepEqual(t.domains, ['example.net', 'example.org', 'bank-verify.co.uk', 'evil.com', 'xn--e1afmkfd.xn--p1ai', 'b.blogspot.com', 'example.com', 'pay-now.biz', 'mple.org', 'scam-mail.ru']);
  assert.deepEqual(t.ips, ['192.168.1.1', '192.0.2.9']);
});

test('uris: words with a dot are not domains unless under a public suffix; the limit holds', () => {
  assert.deepEqual(uriTargets('see file.txt, node.js, e.g. version 1.2.3 and i.e. this', []).domains, []);
  const many = Array.from({ length: 100 }, (_, i) => `http://site${i}.com/`).join(' ');
  assert.equal(uriTargets(many, [], 20).domains.length, 20);
});

test('uris: a quoted-printable HTML body with a tag inside the host and an entity-encoded dot', () => {
  const raw = 'From: a@b.example\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>Visit phish<b></b>-login&#46;net or <a href=3D"hxxp://evil-shop[.]com/x">here</a></p>\r\n';
  assert.deepEqual(messageUriTargets(raw, 65536).domains, ['evil-shop.com', 'phish-login.net']);
});

const compile = (uribl: unknown) => () => compileChecks(buildConfig({ pipeline: { data: ['uribl'] }, checks: { uribl } }, 'test.yaml', '/tmp'));

test('uribl: bad zones are config errors naming the setting, the value and the fix', () => {
  assert.throws(compile({ zones: [{ zone: 'not a zone' }] }), (e: Error) => e instanceof ConfigError && /^config error at checks\.uribl\.zones\[0\]\.zone: .*is not a DNS zone name; write e\.g\. "dbl\.spamhaus\.org"/.test(e.message));
  assert.throws(compile({ zones: [{ zone: 'multi.surbl.org', mask: 256 }] }), (e: Error) => e instanceof ConfigError && /checks\.uribl\.zones\[0\]\.mask: is a bit mask of the last octet of the answer, 1–255/.test(e.message));
  assert.throws(compile({ zones: [{ zone: 'dbl.spamhaus.org', codes: ['127.0.1.9-127.0.1.2'] }] }), (e: Error) => e instanceof ConfigError && /is not a return code or range/.test(e.message));
  assert.throws(compile({ zones: [{ zone: 'zen.spamhaus.org', domains: false }] }), (e: Error) => e instanceof ConfigError && /asked about neither domains nor IPs; set domains: true or ips: true/.test(e.message));
  assert.doesNotThrow(compile({ zones: [{ zone: 'dbl.spamhaus.org', codes: ['127.0.1.2-127.0.1.99'], testName: 'dbltest.com' }, { zone: 'multi.surbl.org', mask: 0xd8 }] }));
});
