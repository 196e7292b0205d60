// TLSA records (RFC 6698 §2) and how a server's certificate chain is matched against them for
// SMTP (RFC 7672 §3, RFC 7671): only DANE-TA(2) and DANE-EE(3) are usable — PKIX-TA(0) and
// PKIX-EE(1) are not, since MX hosts have no agreed public CA set (RFC 7672 §3.1.3); selectors
// Cert(0) and SPKI(1); matching Full(0), SHA2-256(1), SHA2-512(2).
import { createHash, X509Certificate } from 'node:crypto';

export interface Tlsa {
  readonly usage: number;
  readonly selector: number;
  readonly matching: number;
  readonly data: Buffer;
}

const DIGEST_LENGTH: Readonly<Record<number, number>> = { 1: 32, 2: 64 };

/** "3 1 1 <hex>" → a record; undefined when malformed. */
export function parseTlsa(text: string): Tlsa | undefined {
  const m = /^(\d+) (\d+) (\d+) ([0-9a-f]*)$/i.exec(text.trim());
  if (!m || m[4]!.length % 2 !== 0) return undefined;
  return { usage: Number(m[1]), selector: Number(m[2]), matching: Number(m[3]), data: Buffer.from(m[4]!, 'hex') };
}

/**
 * Whether a record can authenticate an SMTP server (RFC 7672 §3.1): usage 2 or 3, a known selector
 * and matching type, and a digest of the right length (a truncated digest matches nothing).
 */
export function usable(r: Tlsa): boolean {
  if (r.usage !== 2 && r.usage !== 3) return false;
  if (r.selector !== 0 && r.selector !== 1) return false;
  if (r.matching === 0) return r.data.length > 0;
  return DIGEST_LENGTH[r.matching] === r.data.length;
}

/** The certificate association data of `cert` for a record's selector and matching type (RFC 6698 §2.1.2-3). */
function association(cert: X509Certificate, selector: number, matching: number): Buffer {
  const selected = selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
  if (matching === 1) return createHash('sha256').update(selected).digest();
  if (matching === 2) return createHash('sha512').update(selected).digest();
  return selected;
}

const matches = (cert: X509Certificate, r: Tlsa): boolean => association(cert, r.selector, r.matching).equals(r.data);

export type DaneMatch = { readonly ok: true; readonly usage: 2 | 3 } | { readonly ok: false; readonly reason: string };

/**
 * Checks the chain the server presented (leaf first) against the usable records. DANE-EE: the leaf
 * matches; no name, expiry or chain checks (RFC 7672 §3.1.1). DANE-TA: a certificate of the chain
 * above the leaf matches, the leaf chains up to it by signatures, is within its validity, and is
 * issued for one of the reference identifiers `names`: the MX host name, and its expanded name
 * when it is a secure CNAME (RFC 7672 §3.1.2, §3.2.2; a wildcard covers one label, §3.2.3).
 */
export function matchChain(chain: readonly X509Certificate[], records: readonly Tlsa[], names: readonly string[], now = new Date()): DaneMatch {
  const leaf = chain[0];
  if (!leaf) return { ok: false, reason: 'the server sent no certificate' };
  if (records.some((r) => r.usage === 3 && matches(leaf, r))) return { ok: true, usage: 3 };
  const ta = records.filter((r) => r.usage === 2);
  for (let i = 1; i < chain.length && ta.length > 0; i++) {
    if (!ta.some((r) => matches(chain[i]!, r))) continue;
    for (let j = 0; j < i; j++) {
      if (!chain[j]!.checkIssued(chain[j + 1]!) || !chain[j]!.verify(chain[j + 1]!.publicKey)) return { ok: false, reason: `certificate ${j} of the chain is not signed by the next one under the DANE-TA trust anchor` };
    }
    if (now < new Date(leaf.validFrom) || now > new Date(leaf.validTo)) return { ok: false, reason: `the certificate is outside its validity (${leaf.validFrom} – ${leaf.validTo})` };
    if (!names.some((n) => leaf.checkHost(n, { wildcards: true, partialWildcards: false }) !== undefined)) return { ok: false, reason: `the certificate is not issued for ${names.join(' or ')}` };
    return { ok: true, usage: 2 };
  }
  return { ok: false, reason: 'no TLSA record matches the certificate chain' };
}

/** The chain a TLS server presented, leaf first, as X509Certificate objects. */
export function peerChain(socket: { getPeerCertificate(detailed: true): { raw?: Buffer; issuerCertificate?: unknown } }): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let c = socket.getPeerCertificate(true) as { raw?: Buffer; issuerCertificate?: unknown } | undefined;
  while (c?.raw && out.length < 16) {
    const x = new X509Certificate(c.raw);
    // The root's issuerCertificate is itself: stop at the first repeat.
    if (seen.has(x.fingerprint256)) break;
    seen.add(x.fingerprint256);
    out.push(x);
    c = c.issuerCertificate as typeof c;
  }
  return out;
}
