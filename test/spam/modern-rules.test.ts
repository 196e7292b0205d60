// Each rule for today's extortion and obfuscated spam (src/spam/rules/) fires on a message built
// to show it and stays quiet on the ordinary mail next to it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMessage } from '../../src/spam/mime.ts';
import { runRules, type RuleContext } from '../../src/spam/rules.ts';
import { MODERN_RULES } from '../../src/spam/rules/index.ts';
import { base58Decode, cryptoAddresses, cryptoShaped, ethereumAddress, isBase58CheckAddress, isBech32Address, isMoneroAddress } from '../../src/spam/rules/crypto-address.ts';
import { moneroBase58 } from '../fixtures/modern-mail/base58.ts';
import { keccak256 } from '../../src/spam/keccak.ts';
import { createHash, randomBytes } from 'node:crypto';
import { paymentDemand } from '../../src/spam/rules/payment-demand.ts';
import { extortionThemes, isExtortion } from '../../src/spam/rules/extortion.ts';
import { tokenize } from '../../src/spam/tokenize.ts';

const STRANGER: RuleContext = { ourDomains: [], authenticated: false };
const HEAD = ['From: Carol <carol@example.net>', 'To: dave@example.org', 'Subject: Hello', 'Date: Tue, 3 Sep 2024 10:00:00 +0200', 'Message-ID: <abc@example.net>', 'Content-Type: text/plain; charset=utf-8'];
function fired(head: string[], body: string, ctx: RuleContext = STRANGER): string[] {
  const m = parseMessage(Buffer.from([...head, '', body].join('\r\n')));
  return runRules(m, tokenize(m).facts, ctx, MODERN_RULES).map((h) => h.name);
}

test('Bitcoin addresses count only with a valid checksum (Base58Check, bech32, bech32m)', () => {
  assert.ok(isBase58CheckAddress('1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa'));
  assert.ok(isBase58CheckAddress('3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy'));
  assert.ok(!isBase58CheckAddress('1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb'), 'one character changed');
  assert.ok(isBech32Address('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'));
  assert.ok(isBech32Address('bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297'), 'taproot, bech32m');
  assert.ok(!isBech32Address('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdr'));
  assert.deepEqual([...base58Decode('1112')!], [0, 0, 0, 1]);
  assert.deepEqual(cryptoAddresses('Send the ETH to 0x52908400098527886E0F7030069857D2E4169EE7 today'), ['eth']);
  assert.deepEqual(cryptoAddresses('build 0x52908400098527886E0F7030069857D2E4169EE7 failed'), [], 'a hex id without the currency named');
  assert.deepEqual(cryptoAddresses(`XMR: 4${'A'.repeat(94)}`), [], 'Monero shape, no checksum');
  assert.ok(cryptoShaped(`XMR: 4${'A'.repeat(94)}`), 'but shaped like one where Monero is named (EXTORTION_DEMAND)');
  assert.deepEqual(cryptoAddresses('tracking id 1BoatSLRHtKNngkdXEeobR76b53LETtpyU'), [], 'right shape, wrong checksum');
});

test('Keccak-256 (Ethereum, Monero): the known digests, and the same permutation as Node\'s SHA3-256 at every length', () => {
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  assert.equal(hex(keccak256(new Uint8Array())), 'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470');
  assert.equal(hex(keccak256(Buffer.from('abc'))), '4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45');
  // SHA3-256 is Keccak with another padding byte: lengths around the 136-byte block edge included.
  for (let n = 0; n < 300; n += 1) {
    const d = randomBytes(n);
    assert.equal(hex(keccak256(d, 0x06)), createHash('sha3-256').update(d).digest('hex'), `length ${n}`);
  }
});

/** EIP-55 written independently of the rule: upper case where the hash nibble is 8 or more. */
function eip55(lowerHex: string): string {
  const h = Buffer.from(keccak256(Buffer.from(lowerHex, 'latin1'))).toString('hex');
  return '0x' + [...lowerHex].map((c, i) => (parseInt(h[i]!, 16) >= 8 ? c.toUpperCase() : c)).join('');
}

test('Ethereum: EIP-55 mixed case is verified; one-case addresses are valid without a checksum', () => {
  // The examples of EIP-55 itself.
  for (const a of ['0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359', '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB', '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb']) {
    assert.equal(ethereumAddress(a), 'checksummed', a);
  }
  assert.equal(ethereumAddress('0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD'), undefined, 'last letter\'s case flipped');
  assert.equal(ethereumAddress('0x52908400098527886e0f7030069857d2e4169ee7'), 'plain');
  for (let i = 0; i < 20; i++) {
    const a = eip55(randomBytes(20).toString('hex'));
    if (a === a.toLowerCase()) continue; // no letters in upper case: nothing to check
    assert.equal(ethereumAddress(a), 'checksummed', a);
    // A checksummed address counts without the currency named; a broken one does not.
    assert.deepEqual(cryptoAddresses(`send it to ${a} today`), ['eth']);
    const broken = a.replace(/[a-f]/, (c) => c.toUpperCase());
    if (broken !== a) assert.deepEqual(cryptoAddresses(`send it to ${broken} today`), []);
  }
  // One case: an address only where the text says Ethereum (a 40-digit hex id otherwise).
  assert.deepEqual(cryptoAddresses('USDT (ERC20) wallet 0x52908400098527886e0f7030069857d2e4169ee7'), ['eth']);
  assert.deepEqual(cryptoAddresses('object 0x52908400098527886e0f7030069857d2e4169ee7 freed'), []);
});

function moneroAddress(prefix: number, payload: number): string {
  const body = Buffer.concat([Buffer.from([prefix]), randomBytes(payload)]);
  return moneroBase58(Buffer.concat([body, Buffer.from(keccak256(body).subarray(0, 4))]));
}

test('Monero: standard, subaddress and integrated addresses with their Keccak checksum', () => {
  // Published addresses of the Monero project (general fund, donations).
  assert.ok(isMoneroAddress('44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A'));
  assert.ok(isMoneroAddress('888tNkZrPN6JsEgekjMnABU4TBzc2Dt29EPAvkRxbANsAnjyPbb3iQ1YBRk1UXcdRsiKc9dhwMVgN5S9cQUiyoogDavup3H'));
  for (let i = 0; i < 10; i++) {
    const standard = moneroAddress(18, 64);
    const sub = moneroAddress(42, 64);
    const integrated = moneroAddress(19, 72);
    assert.equal(standard.length, 95);
    assert.match(standard, /^4/);
    assert.match(sub, /^8/);
    assert.equal(integrated.length, 106);
    for (const a of [standard, sub, integrated]) {
      assert.ok(isMoneroAddress(a), a);
      assert.deepEqual(cryptoAddresses(`wallet: ${a}`), ['xmr'], 'the checksum is enough, no need to name Monero');
      const j = 40;
      const changed = a.slice(0, j) + (a[j] === 'z' ? 'y' : 'z') + a.slice(j + 1);
      assert.ok(!isMoneroAddress(changed), 'one character changed');
    }
  }
});

test('CRYPTO_ADDRESS', () => {
  assert.deepEqual(fired(HEAD, 'My wallet: bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'), ['CRYPTO_ADDRESS']);
  assert.deepEqual(fired(HEAD, 'We talked about bitcoin at the meetup; slides attached.'), []);
});

test('PAYMENT_DEMAND: an amount and a short deadline; an invoice due in 30 days is not one', () => {
  assert.ok(paymentDemand('Transfer 1 300 USD to my wallet. You have 48 hours.'));
  assert.ok(paymentDemand('send $950 once you read this letter'));
  assert.ok(paymentDemand('Pay the amount of €800. Deadline: 2 days.'));
  assert.ok(!paymentDemand('Invoice total $120.00, due within 30 days of receipt.'));
  assert.ok(!paymentDemand('The meeting is in 2 hours.'));
  assert.ok(!paymentDemand('We charged $42.90 to your card. Your parcel ships within 24 hours.'), 'a receipt: no demand');
  assert.deepEqual(fired(HEAD, 'Pay 0.1 BTC within 24 hours.'), ['PAYMENT_DEMAND']);
});

test('EXTORTION_WORDS: the story (intrusion, recording or shame, exposure or payment), after normalisation', () => {
  const story = 'I am a hac ker. I infected your device with mal ware and recorded you with your webcam. I will send the video to all your contacts unless you pay.';
  assert.deepEqual(extortionThemes(story), ['intrusion', 'recording', 'exposure', 'payment']);
  assert.deepEqual(fired(HEAD, story), ['EXTORTION_WORDS'], 'two split words (hacker, malware) are below SPLIT_WORDS');
  assert.ok(isExtortion('Your account was hacked. Our camera recorded the adult site visit; your friends will know. Payment in bitcoin.'));
  assert.ok(!isExtortion('Our server was hacked last night; we restored it from backup. The video of the talk is online.'));
});

test('EXTORTION_DEMAND: the story with an address or an amount and deadline', () => {
  const body = 'I hacked your computer and recorded a video of you. Send $1300 in bitcoin to 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa within 48 hours or your contacts get it.';
  assert.deepEqual(fired(HEAD, body), ['CRYPTO_ADDRESS', 'PAYMENT_DEMAND', 'EXTORTION_WORDS', 'EXTORTION_DEMAND']);
});

test('SPLIT_WORDS, MIXED_SCRIPT_WORDS, INVISIBLE_IN_WORDS: the hiding as evidence; one of each is not enough', () => {
  assert.deepEqual(fired(HEAD, 'the ope rating sys tem of your bro wser is old'), ['SPLIT_WORDS']);
  assert.deepEqual(fired(HEAD, 'the ope rating system is old'), []);
  assert.deepEqual(fired(HEAD, 'Υоur pаsswоrd has expired'), ['MIXED_SCRIPT_WORDS']);
  assert.deepEqual(fired(HEAD, 'Meeting with Алексей tomorrow about the Москва office'), []);
  assert.deepEqual(fired(HEAD, 'your pa\u200bss\u200bwo\u200brd expired'), ['INVISIBLE_IN_WORDS']);
  assert.deepEqual(fired(HEAD, 'Weekly news \u200c \u200c \u200c \u200c here'), []);
});

test('FROM_EQ_TO and MISSING_DATE_AND_MID: only for a sender that did not log in', () => {
  const self = ['From: <dave@example.org>', 'To: dave@example.org', 'Subject: Hi'];
  assert.deepEqual(fired(self, 'text'), ['FROM_EQ_TO', 'MISSING_DATE_AND_MID']);
  assert.deepEqual(fired(self, 'text', { ...STRANGER, authenticated: true }), []);
  assert.deepEqual(fired([...self, 'List-Id: <news.example.org>', 'Date: Tue, 3 Sep 2024 10:00:00 +0200'], 'text'), [], 'a list writing its own address');
  assert.deepEqual(fired(['From: a@example.net', 'To: b@example.org', 'Date: Tue, 3 Sep 2024 10:00:00 +0200'], 'text'), []);
});

test('EXTORTION_DEMAND: a made-up Bitcoin address (bad checksum) still counts with the story', () => {
  const body = 'I have installed a software on your phone and recorded you satisfying yourself. I will spread the video to all your friends. My BTC wallet: 1Gk7Wz9QmPoR3tYbV8nXeLs2aHdKfJc4uM';
  assert.deepEqual(fired(HEAD, body), ['EXTORTION_WORDS', 'EXTORTION_DEMAND']);
});
