// CRYPTO_ADDRESS: a cryptocurrency address to pay to. Extortion and "investment" spam must name
// one; ordinary mail seldom does. Bitcoin addresses carry a checksum, so a string of the right
// shape is counted only when its checksum holds (a random tracking id or base64 run does not
// pass); Ethereum and Monero addresses are taken by their shape, and only when the text names
// the currency (their checksums need Keccak, which Node's crypto lacks).
import { createHash } from 'node:crypto';
import type { Rule } from '../rules.ts';

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const B58_INDEX = new Map([...B58].map((c, i) => [c, i]));

/** Base58 (Bitcoin's alphabet) to bytes, or undefined for a character outside it. */
export function base58Decode(s: string): Uint8Array | undefined {
  const bytes: number[] = [];
  for (const ch of s) {
    let carry = B58_INDEX.get(ch);
    if (carry === undefined) return undefined;
    for (let i = 0; i < bytes.length; i++) {
      carry += bytes[i]! * 58;
      bytes[i] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push(carry & 0xff);
      carry >>= 8;
    }
  }
  for (let i = 0; i < s.length && s[i] === '1'; i++) bytes.push(0);
  return Uint8Array.from(bytes.reverse());
}

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/** A legacy (P2PKH "1…") or script (P2SH "3…") Bitcoin address whose Base58Check checksum (the
 * first 4 bytes of SHA-256 twice over the version and hash) holds. */
export function isBase58CheckAddress(s: string): boolean {
  const b = base58Decode(s);
  if (!b || b.length !== 25 || (b[0] !== 0x00 && b[0] !== 0x05)) return false;
  const sum = sha256(sha256(b.subarray(0, 21)));
  return sum[0] === b[21] && sum[1] === b[22] && sum[2] === b[23] && sum[3] === b[24];
}

const BECH32 = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
function polymod(values: readonly number[]): number {
  const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GEN[i]!;
  }
  return chk >>> 0;
}

/** A native SegWit Bitcoin address ("bc1…") whose checksum holds: bech32 for witness version 0,
 * bech32m for later versions (BIP 173, BIP 350). */
export function isBech32Address(s: string): boolean {
  if (s !== s.toLowerCase() && s !== s.toUpperCase()) return false;
  const lower = s.toLowerCase();
  const sep = lower.lastIndexOf('1');
  if (lower.slice(0, sep) !== 'bc' || lower.length < 14 || lower.length > 90) return false;
  const data: number[] = [];
  for (const ch of lower.slice(sep + 1)) {
    const v = BECH32.indexOf(ch);
    if (v < 0) return false;
    data.push(v);
  }
  if (data.length < 7) return false;
  const hrp = 'bc';
  const expanded = [...[...hrp].map((c) => c.charCodeAt(0) >> 5), 0, ...[...hrp].map((c) => c.charCodeAt(0) & 31)];
  const check = polymod([...expanded, ...data]);
  const version = data[0]!;
  return version === 0 ? check === 1 : version <= 16 && check === 0x2bc830a3;
}

const BASE58_RUN = /(?<![0-9A-Za-z])[13][1-9A-HJ-NP-Za-km-z]{25,34}(?![0-9A-Za-z])/g;
const BECH32_RUN = /(?<![0-9A-Za-z])(?:bc1|BC1)[02-9ac-hj-np-zAC-HJ-NP-Z]{11,87}(?![0-9A-Za-z])/g;
const ETHEREUM = /(?<![0-9A-Za-z])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])/;
const MONERO = /(?<![0-9A-Za-z])[48][1-9A-HJ-NP-Za-km-z]{94}(?![0-9A-Za-z])/;
const NAMES_ETH = /\b(?:ethereum|ether|eth|usdt|erc-?20)\b/i;
const NAMES_XMR = /\b(?:monero|xmr)\b/i;

/** The kinds of payable address in a text: "btc" (checksum verified), "eth", "xmr". */
// Candidates whose checksum is computed, at most: a text made of thousands of address-shaped
// strings would otherwise cost a decode and two SHA-256 each.
const MAX_CANDIDATES = 50;

export function cryptoAddresses(text: string): string[] {
  const kinds: string[] = [];
  if (someMatch(text, BASE58_RUN, isBase58CheckAddress) || someMatch(text, BECH32_RUN, isBech32Address)) kinds.push('btc');
  if (ETHEREUM.test(text) && NAMES_ETH.test(text)) kinds.push('eth');
  if (MONERO.test(text) && NAMES_XMR.test(text)) kinds.push('xmr');
  return kinds;
}

function someMatch(text: string, re: RegExp, ok: (s: string) => boolean): boolean {
  let n = 0;
  for (const m of text.matchAll(re)) {
    if (ok(m[0])) return true;
    if (++n >= MAX_CANDIDATES) return false;
  }
  return false;
}

const NAMES_BTC = /\b(?:bitcoins?|btc)\b/i;

/** A string shaped like a Bitcoin address in a text that names Bitcoin, checksum or not (made-up
 * addresses in hand-written extortion still mean "pay here"): for EXTORTION_DEMAND only. */
export function bitcoinShaped(text: string): boolean {
  return NAMES_BTC.test(text) && (new RegExp(BASE58_RUN.source).test(text) || new RegExp(BECH32_RUN.source).test(text));
}

export const CRYPTO_ADDRESS: Rule = {
  name: 'CRYPTO_ADDRESS',
  // Alone it stays far below the threshold: a donation address in a newsletter is ham.
  points: 1.5,
  description: 'A cryptocurrency address to pay to (Bitcoin with a valid checksum, Ethereum or Monero named as such)',
  test: (_m, f) => cryptoAddresses(f.text).length > 0,
};
