// DKIM signing of outgoing mail (RFC 6376, through mailauth): the key is chosen by the domain of
// the From header (or its nearest parent with a key, which still aligns for DMARC), read at start
// from dataDir/dkim/<domain>.<selector>.key or the files the config names. Also key generation
// and the DNS TXT record to publish (RSA, RFC 6376 §3.6.1; Ed25519, RFC 8463).
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from '../observe/log.ts';

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

export interface DkimKey {
  readonly domain: string;
  readonly selector: string;
  readonly privateKey: string;
  readonly algorithm: DkimAlgorithm;
  /** Where it was read from, for logs and errors. */
  readonly file: string;
}

export interface ConfiguredDkimKey {
  readonly selector: string;
  /** Absolute path of the PEM key; default <dir>/<domain>.<selector>.key. */
  readonly keyFile?: string;
}

/** A key file that cannot be used; names the file and the fix. */
export class DkimKeyError extends Error {
  constructor(
    readonly file: string,
    /** The config key it came from ("delivery.dkim.keys.<domain>", or "dataDir/dkim"). */
    readonly setting: string,
    readonly problem: string,
    readonly fix: string,
  ) {
    super(`${problem}; ${fix}`);
    this.name = 'DkimKeyError';
  }
}

// RFC 6376 §3.1: a selector is one or more labels; we keep it to one so file names stay unambiguous.
export const SELECTOR_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const DOMAIN_RE = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

export const keyFileName = (domain: string, selector: string): string => `${domain.toLowerCase()}.${selector}.key`;
export const isDkimDomain = (d: string): boolean => DOMAIN_RE.test(d);

function algorithmOf(key: KeyObject, file: string, setting: string): DkimAlgorithm {
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    // RFC 8301 §3.2: signers must use at least 1024 bits, and should use 2048.
    if (bits < 1024) throw new DkimKeyError(file, setting, `the DKIM key ${file} has ${bits} bits`, 'make a new one with "mailward dkim keygen" (2048 bits)');
    return 'rsa-sha256';
  }
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519-sha256';
  throw new DkimKeyError(file, setting, `the DKIM key ${file} is of type ${key.asymmetricKeyType ?? 'unknown'}`, 'use an RSA or Ed25519 key ("mailward dkim keygen")');
}

function readKey(domain: string, selector: string, file: string, setting: string): DkimKey {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DkimKeyError(file, setting, `cannot read the DKIM key ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, `create it with "mailward dkim keygen ${domain} --selector ${selector}" or correct the path`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new DkimKeyError(file, setting, `the DKIM key ${file} is not a PEM private key`, `create one with "mailward dkim keygen ${domain} --selector ${selector}"`);
  }
  return { domain: domain.toLowerCase(), selector, privateKey: pem, algorithm: algorithmOf(key, file, setting), file };
}

export class DkimKeys {
  readonly #byDomain: ReadonlyMap<string, DkimKey>;

  constructor(keys: Iterable<DkimKey>) {
    const m = new Map<string, DkimKey>();
    for (const k of keys) m.set(k.domain, k);
    this.#byDomain = m;
  }

  /**
   * Keys for the configured domains, and for every <domain>.<selector>.key in `dir` (when a domain
   * has several there, the newest file signs: publish the new selector, then add its key). Throws
   * DkimKeyError for a key that exists but cannot be used.
   */
  static load(opts: { readonly dir: string; readonly configured?: Readonly<Record<string, ConfiguredDkimKey>>; readonly log?: Logger }): DkimKeys {
    const keys = new Map<string, DkimKey>();
    const newest = new Map<string, number>();
    let names: string[] = [];
    try {
      names = readdirSync(opts.dir);
    } catch {
      // No dkim/ folder: nothing is signed unless the config names key files.
    }
    for (const name of names.sort()) {
      const m = /^(.+)\.([^.]+)\.key$/.exec(name);
      if (!m || !isDkimDomain(m[1]!) || !SELECTOR_RE.test(m[2]!)) continue;
      const domain = m[1]!.toLowerCase();
      if (opts.configured?.[domain]) continue;
      const file = join(opts.dir, name);
      const mtime = statSync(file).mtimeMs;
      if ((newest.get(domain) ?? -Infinity) >= mtime) continue;
      newest.set(domain, mtime);
      keys.set(domain, readKey(domain, m[2]!, file, 'dataDir/dkim'));
    }
    for (const [d, c] of Object.entries(opts.configured ?? {})) {
      const domain = d.toLowerCase();
      keys.set(domain, readKey(domain, c.selector, c.keyFile ?? join(opts.dir, keyFileName(domain, c.selector)), `delivery.dkim.keys.${d}`));
    }
    const out = new DkimKeys(keys.values());
    for (const k of keys.values()) opts.log?.info({ event: 'dkim-key', domain: k.domain, selector: k.selector, algorithm: k.algorithm, file: k.file }, `DKIM signing for ${k.domain} with selector ${k.selector}`);
    return out;
  }

  get size(): number {
    return this.#byDomain.size;
  }

  /** The key for `domain`, or for its nearest parent domain that has one. */
  keyFor(domain: string): DkimKey | undefined {
    let d = domain.toLowerCase().replace(/\.$/, '');
    for (;;) {
      const k = this.#byDomain.get(d);
      if (k) return k;
      const dot = d.indexOf('.');
      if (dot === -1) return undefined;
      d = d.slice(dot + 1);
    }
  }
}

/**
 * The DKIM-Signature header field (ending in CRLF) for `message`, which must be the exact bytes
 * that will be sent (line endings already CRLF). relaxed/relaxed: survives the whitespace changes
 * relays make (RFC 6376 §3.4).
 */
// mailauth (with its own dependencies, ~170 ms to load) is loaded on first use, not at start-up
// (docs/decisions/0018-startup.md).
let mailauth: Promise<typeof import('mailauth')> | undefined;
const loadMailauth = (): Promise<typeof import('mailauth')> => (mailauth ??= import('mailauth'));

export async function dkimSignature(key: DkimKey, message: Readable | Buffer, signTime: Date = new Date()): Promise<string> {
  const sig = { signingDomain: key.domain, selector: key.selector, privateKey: key.privateKey, algorithm: key.algorithm, canonicalization: 'relaxed/relaxed' };
  // mailauth signs only what is listed in signatureData; the top-level key fields are defaults.
  const { dkimSign } = await loadMailauth();
  const res = await dkimSign(message, { ...sig, signTime, signatureData: [sig] });
  if (res.errors && res.errors.length > 0) throw new Error(`DKIM signing for ${key.domain} failed: ${res.errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ')}`);
  if (!res.signatures || res.signatures.trim() === '') throw new Error(`DKIM signing for ${key.domain} produced no signature`);
  return res.signatures.endsWith('\r\n') ? res.signatures : `${res.signatures}\r\n`;
}

export type DkimKeyType = 'rsa' | 'ed25519';

/** A new private key (PKCS#8 PEM). RSA 2048 by default (RFC 8301 §3.2). */
export function generateDkimKey(type: DkimKeyType = 'rsa', bits = 2048): string {
  if (type === 'ed25519') return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  if (!Number.isInteger(bits) || bits < 1024 || bits > 8192) throw new Error(`--bits ${bits}: use 2048 (1024 is the least verifiers accept, RFC 8301 §3.2)`);
  return generateKeyPairSync('rsa', { modulusLength: bits }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** The key files of `domain` in `dir` (<domain>.<selector>.key), newest first: the first signs. */
export function dkimKeyFiles(dir: string, domain: string): Array<{ readonly selector: string; readonly file: string }> {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    // no keys yet
  }
  const prefix = `${domain.toLowerCase()}.`;
  return names
    .filter((n) => n.startsWith(prefix) && n.endsWith('.key') && SELECTOR_RE.test(n.slice(prefix.length, -4)))
    .map((n) => ({ selector: n.slice(prefix.length, -4), file: join(dir, n) }))
    .sort((a, b) => statSync(b.file).mtimeMs - statSync(a.file).mtimeMs);
}

/** The TXT record value to publish at <selector>._domainkey.<domain> for a private key. */
export function dkimRecordValue(privateKeyPem: string): string {
  const pub = createPublicKey(createPrivateKey(privateKeyPem));
  if (pub.asymmetricKeyType === 'ed25519') {
    // RFC 8463 §4.2: p= is the bare 32-byte public key, not an SPKI structure.
    const spki = pub.export({ type: 'spki', format: 'der' });
    return `v=DKIM1; k=ed25519; p=${spki.subarray(spki.length - 32).toString('base64')}`;
  }
  // RFC 6376 §3.6.1: p= is the base64 of the DER SubjectPublicKeyInfo.
  return `v=DKIM1; k=rsa; p=${pub.export({ type: 'spki', format: 'der' }).toString('base64')}`;
}

/** The record in zone-file form, its text split into strings of at most 255 octets (RFC 1035 §3.3.14). */
export function dkimZoneRecord(domain: string, selector: string, value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return `${selector}._domainkey.${domain}. IN TXT ( ${parts.join(' ')} )`;
}
