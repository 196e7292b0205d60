// The sendmail(8) command line and message preparation, apart from the socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataError, UsageError, dataBytes, parseSendmailArgs, prepareMessage } from '../../src/shells/cli/sendmail-args.ts';

test('sendmail flags as cron and PHP pass them; the name picks mailq and newaliases', () => {
  const a = parseSendmailArgs(['-t', '-i', '-fbounce@example.org', '-F', 'Cron Daemon', '-oem', '-odi', '--', '-odd@example.org'], 'sendmail');
  assert.deepEqual(a, { mode: 'send', fromHeaders: true, ignoreDots: true, recipients: ['-odd@example.org'], sender: 'bounce@example.org', fullName: 'Cron Daemon' });
  assert.equal(parseSendmailArgs([], 'mailq').mode, 'mailq');
  assert.equal(parseSendmailArgs([], 'newaliases').mode, 'newaliases');
  assert.equal(parseSendmailArgs(['-bs'], 'sendmail').mode, 'smtp');
  assert.throws(() => parseSendmailArgs([], 'sendmail'), UsageError);
  assert.throws(() => parseSendmailArgs(['-q1h'], 'sendmail'), UsageError);
});

test('-t reads To/Cc/Bcc, removes Bcc (folded too) and adds From, Date, Message-ID', () => {
  const args = parseSendmailArgs(['-t'], 'sendmail');
  const p = prepareMessage(Buffer.from('To: a@example.org\nBcc: b@example.org,\n c@example.org\nSubject: s\n\nbody\n'), args, 'me@example.org', 'host.example.org', new Date(0));
  assert.deepEqual(p.recipients, ['a@example.org', 'b@example.org', 'c@example.org']);
  const text = p.message.toString();
  assert.doesNotMatch(text, /Bcc|c@example/);
  assert.match(text, /^From: <me@example.org>\r\n/m);
  assert.match(text, /^Date: Thu, 01 Jan 1970 00:00:00 \+0000\r\n/m);
  assert.match(text, /^Message-ID: <.+@host\.example\.org>\r\n/m);
  assert.throws(() => prepareMessage(Buffer.from('Subject: none\n\nx\n'), args, 'me@example.org', 'h', new Date()), DataError);
});

test('dot handling: a lone dot ends the input without -i; DATA is dot-stuffed', () => {
  const plain = parseSendmailArgs(['x@example.org'], 'sendmail');
  assert.doesNotMatch(prepareMessage(Buffer.from('Subject: s\n\nkept\n.\ngone\n'), plain, 'm@example.org', 'h', new Date()).message.toString(), /gone/);
  assert.equal(dataBytes(Buffer.from('a\r\n.b\r\n')).toString(), 'a\r\n..b\r\n.\r\n');
});
