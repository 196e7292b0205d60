// CRYPTO_ADDRESS: a cryptocurrency address to pay to. Extortion and "investment" spam must name
// one; ordinary mail seldom does. The addresses carry checksums, so a string of the right shape
// is counted only when its checksum holds (a random tracking id or base64 run does not pass):
// Bitcoin's Base58Check and bech32/bech32m, Ethereum's EIP-55 mixed-case checksum, Monero's
// Keccak checksum. An Ethereum address written in one case carries no checksum (EIP-55 keeps
// those valid): it counts only when the text names the currency.
import { createHash } from 'node:crypto';
import type { Rule } from '../rules.ts';
import { keccak256 } from '../keccak.ts';

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

/** An Ethereum address ("0x" + 40 hex digits): "checksummed" when its mixed case passes EIP-55
 * (a hex letter is upper case exactly when the same nibble of Keccak-256 of the lower-case hex is
 * 8 or more), "plain" when written in one case (valid, without a checksum), undefined when the
 * case is mixed and wrong (a typo or not an address). */
export function ethereumAddress(s: string): 'checksummed' | 'plain' | undefined {
  if (!/^0x[0-9a-fA-F]{40}$/.test(s)) return undefined;
  const hex = s.slice(2);
  if (hex === hex.toLowerCase() || hex === hex.toUpperCase()) return 'plain';
  const hash = keccak256(Buffer.from(hex.toLowerCase(), 'latin1'));
  for (let i = 0; i < 40; i++) {
    const c = hex.charCodeAt(i);
    if (c < 0x41) continue; // a digit has no case
    const nibble = (hash[i >> 1]! >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    if ((c <= 0x46) !== nibble >= 8) return undefined;
  }
  return 'checksummed';
}

// Monero's Base58 (the Bitcoin alphabet) works on blocks: every 8 bytes are 11 characters, a
// shorter last block of n bytes is MONERO_BLOCK[n] characters.
const MONERO_BLOCK = [0, 2, 3, 5, 6, 7, 9, 10, 11];

/** Monero's block-wise Base58 to bytes, or undefined when a block does not decode to its size. */
export function moneroBase58Decode(s: string): Uint8Array | undefined {
  const out: number[] = [];
  for (let at = 0; at < s.length; at += 11) {
    const chunk = s.slice(at, at + 11);
    const size = MONERO_BLOCK.indexOf(chunk.length);
    if (size < 0) return undefined;
    let n = 0n;
    for (const ch of chunk) {
      const v = B58_INDEX.get(ch);
      if (v === undefined) return undefined;
      n = n * 58n + BigInt(v);
    }
    if (n >> BigInt(8 * size) !== 0n) return undefined;
    for (let i = size - 1; i >= 0; i--) out.push(Number((n >> BigInt(8 * i)) & 0xffn));
  }
  return Uint8Array.from(out);
}

// Main-network address prefixes: 18 standard ("4…", 95 characters), 19 integrated ("4…", 106,
// with an 8-byte payment id), 42 subaddress ("8…", 95).
const MONERO_LENGTHS: Readonly<Record<number, number>> = { 18: 69, 19: 77, 42: 69 };

/** A Monero main-network address whose checksum (the first 4 bytes of Keccak-256 over the prefix
 * and keys) holds. */
export function isMoneroAddress(s: string): boolean {
  const b = moneroBase58Decode(s);
  if (!b || MONERO_LENGTHS[b[0]!] !== b.length) return false;
  const sum = keccak256(b.subarray(0, b.length - 4));
  const end = b.length - 4;
  return sum[0] === b[end] && sum[1] === b[end + 1] && sum[2] === b[end + 2] && sum[3] === b[end + 3];
}

const BASE58_RUN = /(?<![0-9A-Za-z])[13][1-9A-HJ-NP-Za-km-z]{25,34}(?![0-9A-Za-z])/g;
const BECH32_RUN = /(?<![0-9A-Za-z])(?:bc1|BC1)[02-9ac-hj-np-zAC-HJ-NP-Z]{11,87}(?![0-9A-Za-z])/g;
const ETHEREUM_RUN = /(?<![0-9A-Za-z])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])/g;
const MONERO_RUN = /(?<![0-9A-Za-z])(?:[48][1-9A-HJ-NP-Za-km-z]{94}|4[1-9A-HJ-NP-Za-km-z]{105})(?![0-9A-Za-z])/g;
const NAMES_ETH = /\b(?:ethereum|ether|eth|usdt|erc-?20)\b/i;
const NAMES_XMR = /\b(?:monero|xmr)\b/i;
const NAMES_BTC = /\b(?:bitcoins?|btc)\b/i;

// Candidates whose checksum is computed, at most: a text made of thousands of address-shaped
// strings would otherwise cost a decode and a hash each.
const MAX_CANDIDATES = 50;

/** The kinds of payable address in a text, each with its checksum verified: "btc", "eth"
 * (or an unchecksummed one-case address in a text that names Ethereum), "xmr". */
export function cryptoAddresses(text: string): string[] {
  const kinds: string[] = [];
  if (someMatch(text, BASE58_RUN, isBase58CheckAddress) || someMatch(text, BECH32_RUN, isBech32Address)) kinds.push('btc');
  const named = NAMES_ETH.test(text);
  if (someMatch(text, ETHEREUM_RUN, (a) => { const e = ethereumAddress(a); return e === 'checksummed' || (e === 'plain' && named); })) kinds.push('eth');
  if (someMatch(text, MONERO_RUN, isMoneroAddress)) kinds.push('xmr');
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

const shaped = (re: RegExp, text: string): boolean => new RegExp(re.source).test(text);

/** A string shaped like an address in a text that names its currency, checksum or not (made-up
 * addresses in hand-written extortion still mean "pay here"): for EXTORTION_DEMAND only. */
export function cryptoShaped(text: string): boolean {
  return (
    (NAMES_BTC.test(text) && (shaped(BASE58_RUN, text) || shaped(BECH32_RUN, text))) ||
    (NAMES_ETH.test(text) && shaped(ETHEREUM_RUN, text)) ||
    (NAMES_XMR.test(text) && shaped(MONERO_RUN, text))
  );
}

export const CRYPTO_ADDRESS: Rule = {
  name: 'CRYPTO_ADDRESS',
  // Alone it stays far below the threshold: a donation address in a newsletter is ham.
  points: 1.5,
  description: 'A cryptocurrency address to pay to, its checksum verified (Bitcoin, Ethereum EIP-55, Monero)',
  test: (_m, f) => cryptoAddresses(f.text).length > 0,
};
