// The inbound pipeline end to end: checks configured in YAML-shaped config, answered by a real
// DNS server on loopback, over real SMTP. Headers from checks land in the delivered message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { dkimSign } from 'mailauth';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { startServer } from '../harness/server.ts';
import { authPlain } from '../harness/auth.ts';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PRIVATE = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const PUBLIC = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

async function dnsFor(t: Parameters<typeof startDns>[0]) {
  return startDns(t, {
    'sender.example': { TXT: ['v=spf1 ip4:127.0.0.1 -all'], MX: ['10 mx.sender.example.'], names: { mx: { A: ['192.0.2.1'] }, 'sel._domainkey': { TXT: [`v=DKIM1; k=rsa; p=${PUBLIC}`] }, _dmarc: { TXT: ['v=DMARC1; p=reject'] } } },
    'forged.example': { TXT: ['v=spf1 ip4:192.0.2.99 -all'], A: ['192.0.2.99'] },
    // SPF neutral: only an aligned DKIM signature can make DMARC pass.
    'dmarc.example': { TXT: ['v=spf1 ?all'], MX: ['10 mx.sender.example.'], names: { 'sel._domainkey': { TXT: [`v=DKIM1; k=rsa; p=${PUBLIC}`] }, _dmarc: { TXT: ['v=DMARC1; p=reject'] } } },
    'zen.test': { names: { '1.0.0.127': { A: ['127.0.0.2'] } } },
  });
}

async function send(port: number, from: string, to: string, data: string): Promise<string> {
  const c = await dial(port);
  await c.expect('220');
  await c.say('EHLO client.sender.example').expect('250');
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  const r = await c.say(`RCPT TO:<${to}>`).read();
  if (r.code !== 250) {
    c.close();
    return r.raw;
  }
  await c.say('DATA').expect('354');
  c.send(data.replace(/\r?\n/g, '\r\n') + '\r\n.\r\n');
  const done = await c.read();
  await c.say('QUIT').expect('221');
  return done.raw;
}

test('pipeline e2e: SPF and DKIM/DMARC headers reach the mailbox; SPF fail and DMARC reject refuse', async (t) => {
  const dns = await dnsFor(t);
  const srv = await startServer(t, {
    users: [['bob@example.org', 'bob password 1']],
    config: {
      dns: { servers: [dns.address], timeout: 500, tries: 1 },
      pipeline: { rcpt: ['recipient', 'spf'], data: ['dkim-dmarc'] },
      checks: { 'dkim-dmarc': { enforce: true } },
    },
  });
  const text = 'From: Alice <alice@sender.example>\r\nTo: bob@example.org\r\nSubject: Lunch\r\nDate: Mon, 05 Jan 2026 12:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\n\r\nSee you at noon.\r\n';
  const sig = { signingDomain: 'sender.example', selector: 'sel', privateKey: PRIVATE };
  const signed = (await dkimSign(text, { ...sig, signatureData: [sig] })).signatures + text;
  assert.match(await send(srv.port('mx'), 'alice@sender.example', 'bob@example.org', signed), /^250 2\.0\.0 Ok: queued as /);
  const [m] = await srv.waitForMail('bob@example.org');
  const head = m!.split('\r\n\r\n')[0]!.replace(/\r\n[ \t]+/g, ' ');
  assert.match(head, /^Return-Path: <alice@sender\.example>\r\nDelivered-To: bob@example\.org\r\nAuthentication-Results: mx\.example\.org; dkim=pass header\.i=@sender\.example/);
  assert.match(head, /\r\nReceived-SPF: pass /);
  assert.match(head, /dmarc=pass/);
  assert.ok(head.indexOf('Received-SPF') < head.indexOf('Received: from client.sender.example'), 'check headers sit above our Received header');

  // A forged sender: SPF fails at RCPT.
  assert.match(await send(srv.port('mx'), 'ceo@forged.example', 'bob@example.org', 'Subject: x\r\n\r\nx'), /^550 5\.7\.23/);
  // A tampered signature under DMARC p=reject, enforced: refused at end of DATA.
  const text2 = text.replace(/sender\.example/g, 'dmarc.example');
  const sig2 = { signingDomain: 'dmarc.example', selector: 'sel', privateKey: PRIVATE };
  const signed2 = (await dkimSign(text2, { ...sig2, signatureData: [sig2] })).signatures + text2;
  assert.match(await send(srv.port('mx'), 'alice@dmarc.example', 'bob@example.org', signed2.replace('noon', 'midnight')), /^550 5\.7\.1/);
  const rej = await srv.waitForLog((l) => l.event === 'rejected' && l.check === 'dkim-dmarc');
  assert.equal(rej.stage, 'data');
  assert.equal(srv.mailbox('bob@example.org').length, 1);
});

test('pipeline e2e: greylisting defers a stranger, permit-login lets a login through, DNSBL rejects at connect', async (t) => {
  const dns = await dnsFor(t);
  const srv = await startServer(t, {
    users: [['bob@example.org', 'bob password 1']],
    config: {
      dns: { servers: [dns.address], timeout: 500, tries: 1 },
      pipeline: { rcpt: ['permit-login', 'recipient', 'greylist'] },
      listeners: {
        mx: { kind: 'mx', port: 0 },
        submission: { kind: 'submission', port: 0 },
        submissions: { kind: 'submissions', port: 0 },
        listed: { kind: 'mx', port: 0, pipeline: { connect: ['dnsbl'] } },
      },
      checks: { dnsbl: { zones: [{ zone: 'zen.test', codes: ['127.0.0.2-127.0.0.11'], action: 'reject' }] } },
    },
  });
  assert.match(await send(srv.port('mx'), 'a@sender.example', 'bob@example.org', 'Subject: x\r\n\r\nx'), /^450 4\.2\.0 Greylisted/);
  // permit-login comes first in the list: a logged-in user skips greylisting.
  const c = await dial(srv.port('submissions'), { tls: true });
  await c.expect('220');
  await c.say('EHLO laptop').expect('250');
  await c.say(authPlain('bob@example.org', 'bob password 1')).expect('235');
  await c.say('MAIL FROM:<bob@example.org>').expect('250');
  await c.say('RCPT TO:<bob@example.org>').expect('250');
  c.close();
  // 127.0.0.1 is listed in zen.test (1.0.0.127.zen.test → 127.0.0.2).
  const l = await dial(srv.port('listed'));
  await l.expect('554 5.7.1');
  await l.closed();
});
