// The normaliser undoes each trick spam uses to hide its words, and leaves ordinary text (English,
// Russian, Greek) as it was.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isKnownWord, normaliseText } from '../../src/spam/normalise.ts';
import { parseMessage } from '../../src/spam/mime.ts';
import { tokenize } from '../../src/spam/tokenize.ts';

test('words split by a space are joined when the joined form is a word and a piece is not', () => {
  const n = normaliseText('I am a hac ker who has access to your ope rating sys tem. Send it to my bit coin address.');
  assert.equal(n.text, 'I am a hacker who has access to your operating system. Send it to my bitcoin address.');
  assert.deepEqual(n.rejoined, ['hacker', 'operating', 'system', 'bitcoin']);
});

test('two words that make a third are left apart; single letters are not joined', () => {
  for (const s of ['We went to get her something in to the house', 'a part of it, a cross on the map', 'the car pet shop']) {
    const n = normaliseText(s);
    assert.equal(n.text, s);
    assert.deepEqual(n.rejoined, []);
  }
  assert.ok(isKnownWord('operating') && !isKnownWord('hac') && !isKnownWord('ker'));
});

test('Cyrillic and Greek look-alikes inside Latin words are folded and counted; Russian and Greek text is not', () => {
  const n = normaliseText('Неllo, yоur pаsswоrd: ΒΙΤCΟΙΝ wаllet');
  assert.equal(n.text, 'Hello, your password: BITCOIN wallet');
  assert.equal(n.mixedScriptWords, 5);
  for (const s of ['Привет, как дела? Это обычный текст о работе.', 'Καλημέρα, τι κάνεις σήμερα;']) {
    const r = normaliseText(s);
    assert.equal(r.text, s.normalize('NFKC'));
    assert.equal(r.mixedScriptWords, 0);
  }
});

test('zero-width and bidi characters go; those between letters are counted; NFKC folds full-width letters', () => {
  const n = normaliseText('pa\u200bss\u200cwo\u2060rd and \u202emalware\u202c, ｂｉｔｃｏｉｎ');
  assert.equal(n.text, 'password and malware, bitcoin');
  assert.equal(n.invisibleInWords, 3);
  // Newsletter preheader padding sits between spaces, not inside words.
  assert.equal(normaliseText('Our news \u200c \u200c \u200c of the week').invisibleInWords, 0);
});

test('the tokenizer reads the normalised text: Bayes sees "hacker", the rules see the facts', () => {
  const raw = Buffer.from('From: a@example.net\r\nSubject: Yоur аccount\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI am a hac ker and I re\u200bcorded you. Pay in bit coin.');
  const { tokens, facts } = tokenize(parseMessage(raw));
  for (const t of ['hacker', 'bitcoin', 'recorded', 'subject:your', 'subject:account']) assert.ok(tokens.has(t), t);
  assert.deepEqual(facts.rejoined, ['hacker', 'bitcoin']);
  assert.equal(facts.invisibleInWords, 1);
  assert.match(facts.text, /^Your account\n/);
});

test('HTML: tags inside words join them; text styled invisible inside a word is dropped', () => {
  const html = '<p>I am a hac<span>ker</span> with ac<b></b>cess to your opera<!-- x -->ting sys<span style="display:none">qzx</span>tem and web<font style="font-size:0px;">zz</font>cam</p><p style="font-size:10px">small print</p>';
  const raw = Buffer.from(`From: a@example.net\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${html}`);
  const { facts } = tokenize(parseMessage(raw));
  assert.equal(facts.text, '\nI am a hacker with access to your operating system and webcam\nsmall print');
});
