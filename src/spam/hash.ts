// Hashes for the Bayes database: a seeded 50-bit token hash (as SpamAssassin keeps 40 bits of
// SHA-1, so the store holds short fixed-size fields instead of words), and the digest that
// identifies a message so that it is never learned twice.
import { createHash } from 'node:crypto';

/** Token hashes fall into this many store hashes (see bayes-db.ts for the key layout): few, so
 * that scoring a message is few reads; more than one, so that expiry reads a part at a time. */
export const BUCKETS = 4;

export interface TokenId {
  readonly bucket: number;
  readonly field: string;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const P24 = 2 ** 24;
const P48 = 2 ** 48;

/**
 * Two 32-bit multiply-xorshift lanes over the UTF-16 code units (the cyrb53 construction), seeded
 * per database so that nobody can precompute words that collide with a database's ham tokens.
 * Returned as one number, bucket · 2^48 + 48 bits of field (below 2^50, an exact integer): a
 * number is a cheap Map key and travels between threads in a Float64Array. At a million tokens
 * a collision is a one-in-a-thousand event, and a collision only merges two tokens' counts.
 */
export function tokenHash(token: string, seed: number): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < token.length; i++) {
    const ch = token.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const bucket = (h2 >>> 28) & (BUCKETS - 1);
  // 24 bits from each lane.
  return bucket * P48 + (h1 >>> 8) * P24 + (h2 & 0xffffff);
}

/** The store hash (bucket) and field of a token hash: the field is its 48 bits, 6 per character. */
export function idOfHash(h: number): TokenId {
  const bucket = Math.floor(h / P48);
  const rest = h - bucket * P48;
  const a = Math.floor(rest / P24);
  const b = rest - a * P24;
  const field =
    ALPHABET[(a >>> 18) & 63]! + ALPHABET[(a >>> 12) & 63]! + ALPHABET[(a >>> 6) & 63]! + ALPHABET[a & 63]! +
    ALPHABET[(b >>> 18) & 63]! + ALPHABET[(b >>> 12) & 63]! + ALPHABET[(b >>> 6) & 63]! + ALPHABET[b & 63]!;
  return { bucket, field };
}

export function tokenId(token: string, seed: number): TokenId {
  return idOfHash(tokenHash(token, seed));
}

/** Hashes of many tokens, in a typed array (transferable between threads). */
export function tokenHashes(tokens: readonly string[], seed: number): Float64Array {
  const out = new Float64Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) out[i] = tokenHash(tokens[i]!, seed);
  return out;
}

/**
 * Identifies a message across copies: the same message delivered twice, or moved between
 * folders, has the same digest. Trace fields (Received, Delivered-To) and our own X-Spam-*
 * markings differ between copies and are left out; line endings and trailing blanks are evened.
 */
export function messageDigest(rawHead: string, rawBody: string): string {
  const h = createHash('sha1');
  const fields = rawHead.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/);
  for (const name of ['message-id', 'date', 'from', 'subject', 'to']) {
    const line = fields.find((f) => f.toLowerCase().startsWith(name + ':'));
    h.update(`${name}:${line === undefined ? '' : line.slice(name.length + 1).replace(/\s+/g, ' ').trim()}\n`, 'latin1');
  }
  h.update(rawBody.replace(/[ \t]*\r?\n/g, '\n').trimEnd(), 'latin1');
  return h.digest('hex');
}
