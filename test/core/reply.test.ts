// formatReply: the wire form of every reply, on the one-line fast path and the multi-line one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReply, reply } from '../../src/core/reply.ts';

test('one-line replies, with and without an enhanced code', () => {
  assert.equal(formatReply(reply(250, '2.0.0', 'OK')), '250 2.0.0 OK\r\n');
  assert.equal(formatReply(reply(220, undefined, 'mx.example ESMTP')), '220 mx.example ESMTP\r\n');
});

test('a CR or LF in the text never splits a reply (one line or several)', () => {
  assert.equal(formatReply(reply(550, '5.7.1', 'no\r\n250 injected')), '550 5.7.1 no 250 injected\r\n');
  assert.equal(formatReply(reply(550, undefined, 'a\nb\rc')), '550 a b c\r\n');
  assert.equal(formatReply(reply(250, undefined, ['mx', 'X\r\nY', 'LAST'])), '250-mx\r\n250-X Y\r\n250 LAST\r\n');
});

test('multi-line replies repeat the enhanced code on every line; an empty list is one empty line', () => {
  assert.equal(formatReply(reply(550, '5.1.1', ['a', 'b'])), '550-5.1.1 a\r\n550 5.1.1 b\r\n');
  assert.equal(formatReply(reply(250, undefined, [])), '250 \r\n');
});
