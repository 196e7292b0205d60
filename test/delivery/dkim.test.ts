// DKIM signing of outgoing mail: keys made by keygen, found in the dkim folder by From domain (or
// a parent domain), the outbound bytes signed and verified by mailauth against the printed TXT
// record; forwarded mail from the world is never signed; unusable key files are refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { dkimVerify } from 'mailauth';
import { DkimKeyError, DkimKeys, dkimRecordValue, dkimZoneRecord, generateDkimKey, keyFileName } from '../../src/delivery/dkim-sign.ts';
import { Router, RouteTable } from '../../src/delivery/router.ts';
import type { Envelope } from '../../src/queue/envelope.ts';
import type { DeliverableMessage, Transport } from '../../src/delivery/transport.ts';
import { captureLog, readAll, tempDir } from '../queue/helpers.ts';
import { hasBareLineEnding } from './sink.ts';

const BODY = 'From: Alice <alice@news.example.org>\nTo: bob@example.net\nSubject: signed\nDate: Tue, 1 Jul 2025 10:00:00 +0000\n\nline one\nline two\r\n';

function message(client: Envelope['client'], body = BODY): DeliverableMessage {
  const bytes = Buffer.from(body);
  const envelope: Envelope = { id: '1k8fn2k50f5t0l8a3', receivedAt: Date.now(), mailFrom: 'alice@example.org', recipients: [{ address: 'bob@example.net', mailbox: 'bob@example.net', transport: 'remote' }], client, smtputf8: false, body: '8BITMIME', size: bytes.length };
  return { envelope, body: () => Readable.from([bytes]), recovered: false };
}

/** Captures what the router hands to the MX transport. */
function capture(): Transport & { got: Buffer[] } {
  const got: Buffer[] = [];
  return {
    got,
    async deliver(msg, indexes) {
      got.push(await readAll(msg.body()));
      return indexes.map((index) => ({ index, outcome: 'ok' as const, reply: '250 ok' }));
    },
  };
}

for (const type of ['rsa', 'ed25519'] as const) {
  test(`dkim (${type}): a keygen key in dataDir/dkim signs mail of the domain and its subdomains; mailauth verifies it`, async (t) => {
    const dir = await tempDir(t);
    const pem = generateDkimKey(type);
    await writeFile(join(dir, keyFileName('example.org', 'sel1')), pem, { mode: 0o600 });
    const record = dkimRecordValue(pem);
    assert.match(record, type === 'rsa' ? /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*$/ : /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    const zone = dkimZoneRecord('example.org', 'sel1', record);
    assert.ok(zone.startsWith('sel1._domainkey.example.org. IN TXT ( "v=DKIM1; '));
    assert.ok(zone.match(/"([^"]*)"/g)!.every((s) => s.length - 2 <= 255), 'no TXT string longer than 255');

    const keys = DkimKeys.load({ dir });
    assert.equal(keys.keyFor('news.example.org')?.domain, 'example.org');
    assert.equal(keys.keyFor('example.com'), undefined);
    const mx = capture();
    const router = new Router({ routes: new RouteTable({}), transports: { mx }, dkim: keys, log: captureLog().log });
    await router.deliver(message({ address: '192.0.2.1', listener: 'submission', sessionId: 's', login: 'alice@example.org' }), [0]);
    const sent = mx.got[0]!;
    assert.match(sent.toString(), /^DKIM-Signature: v=1; a=(rsa|ed25519)-sha256; c=relaxed\/relaxed; d=example\.org;/);
    assert.equal(hasBareLineEnding(sent), false, 'only CRLF leaves');
    assert.ok(sent.toString().endsWith('\r\n\r\nline one\r\nline two\r\n'));
    const res = await dkimVerify(sent, {
      resolver: async (name: string, rrtype: string) => {
        if (name === 'sel1._domainkey.example.org' && rrtype === 'TXT') return [[record]];
        throw Object.assign(new Error('no such record'), { code: 'ENOTFOUND' });
      },
    });
    assert.deepEqual(
      res.results.map((r) => [r.signingDomain, r.selector, r.status.result]),
      [['example.org', 'sel1', 'pass']],
    );
  });
}

test('dkim: mail merely forwarded from the world is not signed; a bad key file is refused by name', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, keyFileName('example.org', 's')), generateDkimKey('rsa'), { mode: 0o600 });
  const mx = capture();
  const router = new Router({ routes: new RouteTable({}), transports: { mx }, dkim: DkimKeys.load({ dir }), log: captureLog().log });
  await router.deliver(message({ address: '203.0.113.9', listener: 'mx', sessionId: 's' }), [0]);
  assert.ok(mx.got[0]!.toString().startsWith('From: Alice'), 'no signature on forwarded mail');

  const bad = join(dir, 'bad');
  await mkdir(bad);
  await writeFile(join(bad, keyFileName('example.net', 'x')), 'not a key');
  assert.throws(
    () => DkimKeys.load({ dir: bad }),
    (e: unknown) => e instanceof DkimKeyError && e.problem === `the DKIM key ${join(bad, 'example.net.x.key')} is not a PEM private key` && e.fix === 'create one with "mailward dkim keygen example.net --selector x"',
  );
  assert.throws(
    () => DkimKeys.load({ dir, configured: { 'example.com': { selector: 'k1' } } }),
    (e: unknown) => e instanceof DkimKeyError && e.setting === 'delivery.dkim.keys.example.com' && /cannot read the DKIM key .*example\.com\.k1\.key: ENOENT/.test(e.problem),
  );
});
