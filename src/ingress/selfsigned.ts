// A self-signed certificate for development, made when no certificate is configured. Node can
// make keys but not X.509 certificates, so this holds a small DER encoder (X.690) for the one
// certificate shape we need (RFC 5280), rather than needing the openssl binary or a dependency.
import { createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { isValidDomain, normaliseDomain } from '../core/address.ts';

// ── DER (ITU-T X.690 §8, §10) ──────────────────────────────────────────────

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  if (n < 0x80) return Buffer.concat([Buffer.from([tag, n]), content]);
  const len: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) len.unshift(v % 256);
  return Buffer.concat([Buffer.from([tag, 0x80 | len.length, ...len]), content]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
const octetString = (b: Buffer): Buffer => tlv(0x04, b);
const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
/** BIT STRING with no unused bits in the last octet, unless `unused` says otherwise. */
const bitString = (b: Buffer, unused = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));
/** [n] EXPLICIT: constructed context-specific tag around an encoded value. */
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
/** [n] IMPLICIT over a primitive value: the content octets under a context-specific tag. */
const implicit = (n: number, content: Buffer): Buffer => tlv(0x80 | n, content);

/** INTEGER from unsigned big-endian octets: minimal, with a 0x00 where the top bit would read as negative. */
function integer(unsigned: Buffer): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  const b = unsigned.subarray(i);
  return tlv(0x02, (b[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime for years 1950–2049, GeneralizedTime from 2050, always in Z. */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // 2025-01-31T12:34:56.789Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = d.getUTCFullYear();
  return year >= 1950 && year < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${digits}Z`));
}

// ── the certificate ──────────────────────────────────────────────────────

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  subjectAltName: '2.5.29.17',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
};

const VALID_BEFORE_NOW_MS = 60 * 60 * 1000; // tolerate a client clock an hour behind
const VALID_DAYS = 730;
// Renew a reused certificate this long before it expires.
const RENEW_BEFORE_MS = 30 * 24 * 60 * 60 * 1000;

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octetString(value)) : seq(oid(id), octetString(value));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // An IPv4 tail ("::ffff:1.2.3.4") becomes two 16-bit groups; then "::" is expanded to zeros.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  const text = v4 ? ip.slice(0, v4.index) + [0, 2].map((i) => (Number(v4[i + 1]) * 256 + Number(v4[i + 2])).toString(16)).join(':') : ip;
  const [head = '', tail = ''] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = text.includes('::') && tail ? tail.split(':') : [];
  const groups = text.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** RFC 5280 §4.2.1.6 GeneralNames: dNSName [2] IA5String, iPAddress [7] OCTET STRING. */
function subjectAltNames(hostname: string): Buffer {
  const dns = isIP(hostname) ? [] : [hostname];
  const ips = isIP(hostname) ? [hostname] : [];
  if (!dns.includes('localhost')) dns.push('localhost');
  for (const ip of ['127.0.0.1', '::1']) if (!ips.includes(ip)) ips.push(ip);
  return seq(...dns.map((d) => implicit(2, Buffer.from(d, 'ascii'))), ...ips.map((ip) => implicit(7, ipBytes(ip))));
}

function checkedHostname(hostname: string): string {
  if (isIP(hostname)) return hostname;
  const h = normaliseDomain(hostname);
  if (!isValidDomain(h)) {
    throw new Error(
      `cannot make a self-signed certificate for hostname "${hostname}": not a valid DNS name; set \`hostname\` in the config to this server's name, e.g. mail.example.org`,
    );
  }
  return h;
}

/** Makes an EC P-256 key and a self-signed server certificate for `hostname` (plus localhost). */
export function createSelfSignedCertificate(hostname: string): { certPem: string; keyPem: string } {
  const host = checkedHostname(hostname);
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const name = seq(set(seq(oid(OID.commonName), utf8String(host))));
  const algorithm = seq(oid(OID.ecdsaWithSha256)); // RFC 5758 §3.2: parameters absent
  // RFC 5280 §4.1.2.2: positive, at most 20 octets; 16 random octets with the top bit clear.
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f || 0x01;
  const now = Math.floor(Date.now() / 1000) * 1000;

  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))), // version v3
    integer(serial),
    algorithm,
    name, // issuer = subject: self-signed
    seq(time(new Date(now - VALID_BEFORE_NOW_MS)), time(new Date(now + VALID_DAYS * 86_400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(
      3,
      seq(
        extension(OID.subjectAltName, false, subjectAltNames(host)),
        extension(OID.basicConstraints, true, seq()), // cA defaults to FALSE
        extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature (bit 0)
        extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
      ),
    ),
  );
  // ECDSA signature, DER-encoded Ecdsa-Sig-Value (RFC 5758 §3.2).
  const signature = sign('sha256', tbs, privateKey);
  const der = seq(tbs, algorithm, bitString(signature));
  return {
    certPem: pem('CERTIFICATE', der),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

// ── files ────────────────────────────────────────────────────────────────

export interface SelfSignedFiles {
  readonly certPath: string;
  readonly keyPath: string;
  /** False when usable files were already there. */
  readonly created: boolean;
}

/**
 * Returns a self-signed certificate under `dir`, making one when there is none, when it was
 * made for another hostname, when it expires within 30 days, or when key and certificate do
 * not match. The key file is written with mode 0600.
 */
export async function ensureSelfSignedCertificate(dir: string, hostname: string): Promise<SelfSignedFiles> {
  const certPath = join(dir, 'selfsigned-cert.pem');
  const keyPath = join(dir, 'selfsigned-key.pem');
  const host = checkedHostname(hostname);
  if (await isUsable(certPath, keyPath, host)) return { certPath, keyPath, created: false };
  const { certPem, keyPem } = createSelfSignedCertificate(host);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeReplacing(keyPath, keyPem, 0o600);
  await writeReplacing(certPath, certPem, 0o644);
  return { certPath, keyPath, created: true };
}

async function isUsable(certPath: string, keyPath: string, host: string): Promise<boolean> {
  try {
    const cert = new X509Certificate(await readFile(certPath));
    const key = createPrivateKey(await readFile(keyPath));
    const matches = isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
    return matches && new Date(cert.validTo).getTime() - Date.now() > RENEW_BEFORE_MS && cert.checkPrivateKey(key);
  } catch {
    return false; // missing or unreadable: make a new one
  }
}

/** Writes through a temporary file and a rename, so a reader never sees half a file. */
async function writeReplacing(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
