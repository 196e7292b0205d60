// The Sender Rewriting Scheme (Shevek's "Sender Rewriting Scheme" paper, the format of libsrs2 and
// postsrsd): when an alias forwards mail outside, the outside copy's envelope sender becomes an
// address in our SRS domain, so SPF at the next hop checks our domain (RFC 7208 §1.2.3 names SRS as
// the fix for forwarding), and a bounce comes back to us, which reverses it to the original sender.
//
//   SRS0=HHHH=TT=domain=local@srs-domain    (first forward: hash, day stamp, the original sender)
//   SRS1=HHHH=fwd-domain==HHHH=TT=…@srs-domain   (re-forwarding another forwarder's SRS0 address)
//
// HHHH: HMAC-SHA1 with a secret over the lower-cased fields, base64 (we write the URL-safe
// alphabet, as postsrsd 2 does; both are read), first 4 characters, compared without case (some
// MTAs lower-case local parts). TT: days since the epoch mod 1024 in base32 (A-Z2-7). An SRS1 address
// keeps the first forwarder's SRS0 part opaque: only its hash of that forwarder is checked here.
import { createHmac, timingSafeEqual } from 'node:crypto';

const TAG0 = 'SRS0';
const TAG1 = 'SRS1';
const HASH_LENGTH = 4;
const DAY_MS = 86_400_000;
const STAMP_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const STAMP_SLOTS = 1024;
/** What may follow SRS0/SRS1 in a sender's local part (libsrs2 accepts these three). */
const SEPARATORS = '=-+';

/** The day stamp of `nowMs`: two base32 characters of (days since the epoch) mod 1024. */
export function srsStamp(nowMs: number): string {
  const day = Math.floor(nowMs / DAY_MS) % STAMP_SLOTS;
  return STAMP_ALPHABET[day >> 5]! + STAMP_ALPHABET[day & 31]!;
}

/** Days since a stamp was made (0..1023, wrapping), or undefined when it is not a stamp. */
export function stampAgeDays(stamp: string, nowMs: number): number | undefined {
  if (stamp.length !== 2) return undefined;
  const hi = STAMP_ALPHABET.indexOf(stamp[0]!.toUpperCase());
  const lo = STAMP_ALPHABET.indexOf(stamp[1]!.toUpperCase());
  if (hi < 0 || lo < 0) return undefined;
  const then = (hi << 5) | lo;
  const now = Math.floor(nowMs / DAY_MS) % STAMP_SLOTS;
  return (now - then + STAMP_SLOTS) % STAMP_SLOTS;
}

/** The 4-character hash of `parts` with `secret` (URL-safe base64 alphabet). */
export function srsHash(secret: string, ...parts: string[]): string {
  const mac = createHmac('sha1', secret);
  for (const p of parts) mac.update(p.toLowerCase(), 'utf8');
  return mac.digest('base64url').slice(0, HASH_LENGTH);
}

/** One hash character in a canonical form: case folded, "+" and "/" read as "-" and "_". */
const canonical = (h: string): string => h.toLowerCase().replace(/\+/g, '-').replace(/\//g, '_');

function hashMatches(given: string, secrets: readonly string[], parts: string[]): boolean {
  if (given.length !== HASH_LENGTH) return false;
  const g = Buffer.from(canonical(given));
  // Every key is tried (newest first); a rotated-out key still verifies the addresses it made.
  let ok = false;
  for (const s of secrets) if (timingSafeEqual(g, Buffer.from(canonical(srsHash(s, ...parts))))) ok = true;
  return ok;
}

const splitAt = (address: string): [string, string] | undefined => {
  const at = address.lastIndexOf('@');
  return at <= 0 || at === address.length - 1 ? undefined : [address.slice(0, at), address.slice(at + 1)];
};

const tagOf = (local: string): 'SRS0' | 'SRS1' | undefined => {
  const tag = local.slice(0, 4).toUpperCase();
  const sep = local[4];
  if ((tag !== TAG0 && tag !== TAG1) || sep === undefined || !SEPARATORS.includes(sep)) return undefined;
  return tag;
};

/** True when the local part has the shape of an SRS address (SRS0/SRS1 and a separator). */
export const isSrsLocal = (local: string): boolean => tagOf(local) !== undefined;

/**
 * The SRS sender for a message from `sender` forwarded by us, in `domain`, signed with `secret`
 * (the newest key). A sender already in `domain` is kept as it is; another forwarder's SRS0 or
 * SRS1 address becomes an SRS1 address that keeps the first forwarder's part (the paper's
 * "guarded" scheme), so a bounce goes back along the chain.
 */
export function srsForward(sender: string, domain: string, secret: string, nowMs: number): string {
  const parts = splitAt(sender);
  if (!parts) throw new Error(`not an address: ${JSON.stringify(sender)}`);
  const [local, host] = parts;
  if (host.toLowerCase() === domain.toLowerCase()) return sender;
  const tag = tagOf(local);
  if (tag === TAG1) {
    // SRS1=HHHH=first-forwarder==rest@host: re-signed for our domain, the first forwarder kept.
    const m = /^.{5}[^=]*=([^=]+)=(.+)$/s.exec(local);
    if (m) return `${TAG1}=${srsHash(secret, m[1]!, m[2]!)}=${m[1]}=${m[2]}@${domain}`;
  }
  if (tag === TAG0) {
    // The other forwarder's whole SRS0 part (from its separator on) is opaque to us.
    const rest = local.slice(4);
    return `${TAG1}=${srsHash(secret, host, rest)}=${host}=${rest}@${domain}`;
  }
  const stamp = srsStamp(nowMs);
  return `${TAG0}=${srsHash(secret, stamp, host, local)}=${stamp}=${host}=${local}@${domain}`;
}

export type SrsReversal =
  | { readonly ok: true; readonly address: string }
  | { readonly ok: false; readonly reason: string };

/**
 * The address an SRS address of ours stands for: the original sender (SRS0), or the first
 * forwarder's SRS0 address (SRS1). Refused with the reason when the hash does not verify with
 * any key, when an SRS0 stamp is older than `maxAgeDays` (or from the future), or when it is
 * malformed. `address` must be in our SRS domain (the caller checks the domain).
 */
export function srsReverse(address: string, secrets: readonly string[], nowMs: number, maxAgeDays: number): SrsReversal {
  const parts = splitAt(address);
  if (!parts) return { ok: false, reason: 'not an address' };
  const local = parts[0];
  const tag = tagOf(local);
  if (!tag) return { ok: false, reason: 'not an SRS address' };
  if (secrets.length === 0) return { ok: false, reason: 'no SRS key' };
  const body = local.slice(5);
  if (tag === TAG1) {
    const m = /^([^=]*)=([^=]+)=(.+)$/s.exec(body);
    if (!m) return { ok: false, reason: 'malformed SRS1 address' };
    const [, hash, host, rest] = m as unknown as [string, string, string, string];
    if (!hashMatches(hash, secrets, [host, rest])) return { ok: false, reason: 'SRS1 hash invalid' };
    return { ok: true, address: `${TAG0}${rest}@${host}` };
  }
  const m = /^([^=]*)=([^=]*)=([^=]+)=(.+)$/s.exec(body);
  if (!m) return { ok: false, reason: 'malformed SRS0 address' };
  const [, hash, stamp, host, user] = m as unknown as [string, string, string, string, string];
  const age = stampAgeDays(stamp, nowMs);
  if (age === undefined) return { ok: false, reason: `SRS0 time stamp ${JSON.stringify(stamp)} malformed` };
  // The hash first: an attacker learns nothing of the stamp rule from a forged address.
  if (!hashMatches(hash, secrets, [stamp, host, user])) return { ok: false, reason: 'SRS0 hash invalid' };
  if (age > maxAgeDays) return { ok: false, reason: `SRS0 address expired (${age} days old, at most ${maxAgeDays})` };
  return { ok: true, address: `${user}@${host}` };
}
