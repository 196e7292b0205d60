// The content verdict end to end, over real SMTP into real Maildirs: a clean message reaches the
// inbox marked "No"; spam goes to the mailbox's .Junk folder with the Subject marked; kill-level
// spam is answered 250 and kept in the spool's quarantine; fields a sender wrote to fake our
// verdict are gone; and no bounce goes to the sender of spam or of mail that failed SPF.
// Deterministic: the spam check's rules (not Bayes, which has learned nothing) decide, with low
// thresholds (spam 2, kill 5).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { reply } from '../../src/core/reply.ts';
import { loadMessageSync } from '../../src/queue/reader.ts';
import { dial } from '../harness/dial.ts';
import { startDns } from '../harness/dns.ts';
import { maildirPath, readMaildir, startServer, type TestServer } from '../harness/server.ts';
import { startSink, type Sink } from '../delivery/sink.ts';

const BOB = 'bob@example.org';

async function rig(t: TestContext): Promise<{ srv: TestServer; sink: Sink }> {
  // carol (behind fwd@) is deferred once, then refused for good; dave (behind fwd-spam@) refused at once.
  const sink = await startSink(t, {
    rcpt: (a, n) => (a === 'carol@example.net' && n === 1 ? reply(451, '4.3.0', 'Not now') : a.endsWith('@example.net') ? reply(550, '5.1.1', 'No such user here') : undefined),
  });
  const dns = await startDns(t, {
    'example.net': { MX: ['10 mx.example.net.'], names: { mx: { A: ['127.0.0.1'] } } },
    'sender.example': { TXT: ['v=spf1 ip4:127.0.0.1 -all'] },
    'forged.example': { TXT: ['v=spf1 ip4:192.0.2.99 -all'] },
  });
  const srv = await startServer(t, {
    users: [[BOB, 'bob password 1']],
    aliases: [
      ['fwd@example.org', ['carol@example.net']],
      ['fwd-spam@example.org', ['dave@example.net']],
    ],
    config: {
      dns: { servers: [dns.address], timeout: 500, tries: 1 },
      pipeline: { rcpt: ['recipient', 'spf'], data: ['spam'] },
      checks: {
        spam: { spam: 2, kill: 5, autolearn: false, workers: 0 },
        // A failing sender is scored a little instead of refused, so the message is accepted.
        spf: { fail: 'score', failPoints: 0.5 },
      },
      // These tests watch the next hop refuse forwarded spam: forward it (the default keeps it back).
      forwarding: { junk: 'forwarded' },
      queue: { minBackoff: '1s', maxBackoff: '2s' },
      delivery: { mx: { port: sink.port }, timeouts: { connect: '2s', greeting: '2s', idle: '5s' } },
    },
  });
  return { srv, sink };
}

async function send(srv: TestServer, from: string, to: string[], data: string): Promise<string> {
  const c = await dial(srv.port('mx'));
  await c.expect('220');
  await c.say('EHLO client.sender.example').expect('250');
  await c.say(`MAIL FROM:<${from}>`).expect('250');
  for (const r of to) await c.say(`RCPT TO:<${r}>`).expect('250');
  await c.say('DATA').expect('354');
  c.send(data.replace(/\r?\n/g, '\r\n') + '\r\n.\r\n');
  const done = await c.expect('250 2.0.0 Ok: queued as ');
  await c.say('QUIT').expect('221');
  return done.text.split(' ').pop()!;
}

/** The header block of a delivered message, unfolded. */
const headOf = (m: string): string => m.split('\r\n\r\n')[0]!.replace(/\r\n[ \t]+/g, ' ');
const now = (): string => new Date().toUTCString().replace('GMT', '+0000');

test('spam e2e: ham to the inbox, spam to .Junk with the Subject marked, kill to quarantine; forged verdicts stripped', async (t) => {
  const { srv } = await rig(t);
  const junk = path.join(maildirPath(srv.config.paths.mail, BOB), '.Junk');

  // Kill-level: From our own domain without login (3), no Date (1), no Message-ID (0.5), neither
  // from a stranger (1), a link to a bare IP (1.5) = 7.
  const killId = await send(srv, 'it@sender.example', [BOB], 'From: "IT desk" <it@example.org>\nTo: bob@example.org\nSubject: Password expiry\n\nConfirm at http://198.51.100.7/login now.');
  const quarantined = await srv.waitForLog((l) => l.event === 'quarantined' && l.queueId === killId);
  assert.equal(quarantined.spam, 'kill');
  assert.equal(quarantined.score, 7);
  assert.equal(srv.logs.some((l) => l.event === 'queued' && l.queueId === killId), false);
  const kept = loadMessageSync(path.join(srv.config.paths.spool, 'quarantine', killId[7]!, killId), killId);
  assert.equal(kept?.envelope.noBounce, 'spam');
  assert.equal(kept?.envelope.folder, 'Junk', 'released from quarantine, it would still go to Junk');
  assert.equal(existsSync(path.join(srv.config.paths.spool, 'queue', killId[7]!, killId)), false);

  // Ham, with a sender's attempt at our verdict.
  const hamId = await send(srv, 'alice@sender.example', [BOB], `From: Alice <alice@sender.example>\nTo: bob@example.org\nSubject: Minutes\nDate: ${now()}\nMessage-ID: <m1@sender.example>\nX-Spam-Status: Yes, score=99\n\nSee you tomorrow.`);
  const [ham] = await srv.waitForMail(BOB);
  const hamHead = headOf(ham!);
  assert.match(hamHead, /^Return-Path: <alice@sender\.example>\r\nDelivered-To: bob@example\.org\r\nX-Spam-Score: 0\.0\r\nX-Spam-Status: No, score=0\.0 required=2\.0 tests=none\r\nReceived-SPF: pass /);
  assert.equal(hamHead.match(/X-Spam-/g)?.length, 2, 'only our two X-Spam fields');
  assert.match(hamHead, /\r\nSubject: Minutes\r\n/);
  const hamQueued = await srv.waitForLog((l) => l.event === 'queued' && l.queueId === hamId);
  assert.equal(hamQueued.spam, undefined);
  assert.equal(hamQueued.noBounce, undefined);

  // Spam: no Date (1), no Message-ID (0.5), neither (1), a link to a bare IP (1.5) = 4. The sender wrote its
  // own "not spam" verdict and Authentication-Results in our name; another host's results stay.
  const spamId = await send(
    srv,
    'promo@sender.example',
    [BOB],
    [
      'X-Spam-Flag: NO',
      'X-Spam-Status: No, score=-50.0 required=5.0 tests=ALL_GOOD',
      'Authentication-Results: MX.example.org; dkim=pass header.d=sender.example',
      'Authentication-Results: (relay) other.example; spf=pass',
      'From: Promo <promo@sender.example>',
      'To: bob@example.org',
      'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and',
      ' deals',
      'x-spam-score: -50',
      '',
      'Visit http://203.0.113.9/deal today.',
    ].join('\n'),
  );
  const spamQueued = await srv.waitForLog((l) => l.event === 'queued' && l.queueId === spamId);
  assert.equal(spamQueued.spam, 'spam');
  assert.equal(spamQueued.noBounce, 'spam');
  await srv.waitForLog((l) => l.event === 'delivered' && l.queueId === spamId);
  assert.equal(srv.mailbox(BOB).length, 1, 'the inbox holds the ham only');
  const [spam] = readMaildir(junk);
  assert.ok(spam);
  assert.deepEqual(readdirSync(junk).sort(), ['cur', 'maildirfolder', 'new', 'tmp']);
  assert.equal(readdirSync(path.join(junk, 'new')).length, 1);
  const spamHead = headOf(spam);
  assert.match(spamHead, /^Return-Path: <promo@sender\.example>\r\nDelivered-To: bob@example\.org\r\nX-Spam-Score: 4\.0\r\nX-Spam-Status: Yes, score=4\.0 required=2\.0 tests=MISSING_DATE,MISSING_DATE_AND_MID,MISSING_MID,URI_NUMERIC_IP\r\nX-Spam-Flag: YES\r\n/);
  assert.equal(spamHead.match(/X-Spam-/gi)?.length, 3, 'the sender\'s X-Spam fields are gone');
  assert.doesNotMatch(spamHead, /MX\.example\.org; dkim=pass/i);
  assert.match(spamHead, /\r\nAuthentication-Results: \(relay\) other\.example; spf=pass\r\n/);
  // The encoded-word keeps its own bytes and stays apart from the prefix (RFC 2047 §5).
  assert.match(spam, /\r\nSubject: \*\*\*\*\*SPAM\*\*\*\*\* =\?UTF-8\?Q\?Gr=C3=BC=C3=9Fe\?= and\r\n deals\r\n/);
  assert.ok(spam.endsWith('\r\n\r\nVisit http://203.0.113.9/deal today.\r\n'));

  // The kill-level message was never delivered anywhere.
  assert.equal(srv.logs.some((l) => l.queueId === killId && l.event === 'delivered'), false);
  assert.equal(srv.mailbox(BOB).concat(readMaildir(junk)).some((m) => m.includes('Password expiry')), false);
});

test('spam e2e: no bounce to the sender of spam, nor of mail that failed SPF (auth-failed)', async (t) => {
  const { srv, sink } = await rig(t);
  // SPF fail (0.5 points, tagged auth-failed) but otherwise clean: ham, forwarded to carol.
  const forgedId = await send(srv, 'ceo@forged.example', ['fwd@example.org'], `From: ceo@forged.example\nTo: fwd@example.org\nSubject: Wire transfer\nDate: ${now()}\nMessage-ID: <w1@forged.example>\n\nPlease pay.`);
  const queued = await srv.waitForLog((l) => l.event === 'queued' && l.queueId === forgedId);
  assert.equal(queued.noBounce, 'auth-failed');
  assert.equal(queued.spam, undefined);
  // Deferred once: the queue entry is on disk, with the mark the bouncer reads.
  await srv.waitForLog((l) => l.event === 'deferred' && l.queueId === forgedId);
  const entry = loadMessageSync(path.join(srv.config.paths.spool, 'queue', forgedId[7]!, forgedId), forgedId);
  assert.equal(entry?.envelope.noBounce, 'auth-failed');
  assert.equal(entry?.envelope.folder, undefined);

  // Spam (4 points) from a sender that passes SPF, forwarded to dave, who refuses it.
  const spamId = await send(srv, 'promo@sender.example', ['fwd-spam@example.org'], 'From: promo@sender.example\nSubject: Deals\n\nVisit http://203.0.113.9/deal today.');

  const suppressed = await srv.waitForLog((l) => l.event === 'bounce-suppressed' && l.queueId === spamId);
  assert.equal(suppressed.reason, 'spam');
  const bounced = await srv.waitForLog((l) => l.event === 'bounced' && l.queueId === forgedId, 10_000);
  assert.equal(bounced.rcpt, 'fwd@example.org');
  const suppressedForged = await srv.waitForLog((l) => l.event === 'bounce-suppressed' && l.queueId === forgedId);
  assert.equal(suppressedForged.reason, 'auth-failed');
  assert.equal(srv.logs.filter((l) => l.event === 'bounce-queued').length, 0, 'no DSN was queued');
  assert.deepEqual(
    sink.rcpts.map((r) => `${r.address} ${r.code}`).sort(),
    ['carol@example.net 451', 'carol@example.net 550', 'dave@example.net 550'],
  );
  assert.equal(sink.messages.length, 0);
});
