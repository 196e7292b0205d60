// The certificate the listeners offer, swappable while the server runs: a holder the listeners
// ask at each handshake (new sessions get the new pair, sessions under way keep theirs), filled
// from tls.cert/tls.key (watched: certbot renews by re-pointing the symlinks in
// /etc/letsencrypt/live/NAME/), from the built-in ACME client, or from a self-signed pair.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, realpathSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { Logger } from '../observe/log.ts';
import type { TlsContextSource } from '../ingress/smtp/tls.ts';

/** A certificate chain and its key, PEM, as read or issued. */
export interface PemPair {
  readonly cert: string;
  readonly key: string;
}

/** What the log and `doctor` say about a certificate. */
export interface CertificateFacts {
  readonly subject: string;
  readonly names: string[];
  readonly issuer: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** SHA-256 of the leaf certificate (DER), hex with colons, as `openssl x509 -fingerprint -sha256` prints it. */
  readonly fingerprint: string;
}

/** A pair that cannot be used; `file` names the culprit (the key file when they do not match). */
export class CertificateError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'CertificateError';
  }
}

export function certificateFacts(certPem: string): CertificateFacts {
  const x = new X509Certificate(certPem);
  const names = (x.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('DNS:'))
    .map((n) => n.slice(4));
  return { subject: x.subject.replace(/\n/g, ', '), names, issuer: x.issuer.replace(/\n/g, ', '), notBefore: Date.parse(x.validFrom), notAfter: Date.parse(x.validTo), fingerprint: x.fingerprint256 };
}

/**
 * Checks that `pair` parses and that the key belongs to the leaf certificate, and builds its
 * context. The names are only for the error: which file is wrong.
 */
export function validatePair(pair: PemPair, names: { readonly cert: string; readonly key: string } = { cert: 'certificate', key: 'key' }): { context: tls.SecureContext; facts: CertificateFacts } {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pair.cert);
  } catch (err) {
    throw new CertificateError(names.cert, `not a PEM certificate (${(err as Error).message})`);
  }
  let key;
  try {
    key = createPrivateKey(pair.key);
  } catch (err) {
    throw new CertificateError(names.key, `not a PEM private key (${(err as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key)) throw new CertificateError(names.key, `this key does not belong to the certificate in ${names.cert} (${leaf.subject.replace(/\n/g, ', ')})`);
  try {
    return { context: tls.createSecureContext({ cert: pair.cert, key: pair.key, minVersion: 'TLSv1.2' }), facts: certificateFacts(pair.cert) };
  } catch (err) {
    throw new CertificateError(names.cert, `cannot be used with its key: ${(err as Error).message}`);
  }
}

/** Reads and validates a pair of files; CertificateError names the file that is wrong. */
export function readPair(certFile: string, keyFile: string): { pair: PemPair; context: tls.SecureContext; facts: CertificateFacts } {
  const read = (file: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new CertificateError(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  };
  const pair = { cert: read(certFile), key: read(keyFile) };
  return { pair, ...validatePair(pair, { cert: certFile, key: keyFile }) };
}

const digest = (p: PemPair): string => createHash('sha256').update(p.cert).update('\0').update(p.key).digest('hex');

/**
 * The swappable certificate. `swap` validates first: a bad pair never replaces a good one.
 * Listeners (and, with workers > 1, the acceptors through `onSwap`) follow it.
 */
export class CertificateHolder implements TlsContextSource {
  #context: tls.SecureContext;
  #pair: PemPair;
  #facts: CertificateFacts;
  #digest: string;
  readonly #listeners: Array<(pair: PemPair, facts: CertificateFacts) => void> = [];

  constructor(pair: PemPair, context: tls.SecureContext, facts: CertificateFacts) {
    this.#pair = pair;
    this.#context = context;
    this.#facts = facts;
    this.#digest = digest(pair);
  }

  static of(pair: PemPair): CertificateHolder {
    const { context, facts } = validatePair(pair);
    return new CertificateHolder(pair, context, facts);
  }

  current(): tls.SecureContext {
    return this.#context;
  }

  get pair(): PemPair {
    return this.#pair;
  }

  get facts(): CertificateFacts {
    return this.#facts;
  }

  /** True when `pair` is the one in use already. */
  holds(pair: PemPair): boolean {
    return digest(pair) === this.#digest;
  }

  /** Swaps in a validated pair; returns false (nothing changes) when it is the same pair. */
  swap(pair: PemPair, context: tls.SecureContext, facts: CertificateFacts): boolean {
    if (this.holds(pair)) return false;
    this.#pair = pair;
    this.#context = context;
    this.#facts = facts;
    this.#digest = digest(pair);
    for (const l of this.#listeners) l(pair, facts);
    return true;
  }

  onSwap(listener: (pair: PemPair, facts: CertificateFacts) => void): void {
    this.#listeners.push(listener);
  }
}

export interface FileWatchOptions {
  readonly holder: CertificateHolder;
  readonly cert: string;
  readonly key: string;
  readonly log: Logger;
  /** Quiet time after the last change before reading (certbot replaces two symlinks). */
  readonly debounceMs?: number;
}

export interface CertificateFiles {
  /** Reads the files again now (SIGHUP); resolves whether a new pair went in. */
  reload(reason: string): boolean;
  close(): void;
}

/** Logs a swapped-in certificate: one line an operator can grep after a renewal. */
export function logSwap(log: Logger, facts: CertificateFacts, origin: string): void {
  log.info({ event: 'tls-reloaded', origin, subject: facts.subject, names: facts.names, fingerprint: facts.fingerprint, notAfter: new Date(facts.notAfter).toISOString() }, `new TLS certificate in use for new sessions (${origin}): ${facts.names.join(', ') || facts.subject}, valid until ${new Date(facts.notAfter).toISOString()}`);
}

/**
 * Watches the folders of tls.cert and tls.key (and of the files they point to): certbot renews
 * by writing new files into archive/ and re-pointing the symlinks in live/, which a watch on
 * the file itself (its old inode) would never see. After a quiet `debounceMs` both files are
 * read; a pair that does not parse or match is retried once after another quiet period (the
 * two symlinks are not replaced at the same instant), then refused with an error naming the
 * file, and the running certificate stays.
 */
export function watchCertificateFiles(o: FileWatchOptions): CertificateFiles {
  const debounceMs = o.debounceMs ?? 1000;
  const folders = new Set<string>();
  for (const f of [o.cert, o.key]) {
    folders.add(path.dirname(path.resolve(f)));
    try {
      folders.add(path.dirname(realpathSync(f)));
    } catch {
      // Missing right now: the folder of the configured path is watched all the same.
    }
  }
  let timer: NodeJS.Timeout | undefined;
  let retried = false;
  const reload = (reason: string): boolean => {
    let read;
    try {
      read = readPair(o.cert, o.key);
    } catch (err) {
      const file = err instanceof CertificateError ? err.file : o.cert;
      o.log.error({ event: 'tls-reload', applied: false, reason, file, err: err instanceof Error ? err.message : String(err) }, `TLS certificate not reloaded: ${err instanceof Error ? err.message : String(err)}; new sessions keep the running certificate (${o.holder.facts.fingerprint})`);
      return false;
    }
    const swapped = o.holder.swap(read.pair, read.context, read.facts);
    if (swapped) logSwap(o.log, read.facts, reason);
    return swapped;
  };
  const settle = (): void => {
    timer = undefined;
    let pair: PemPair | undefined;
    try {
      pair = readPair(o.cert, o.key).pair;
    } catch {
      pair = undefined;
    }
    if (pair && o.holder.holds(pair)) return;
    if (!pair && !retried) {
      // Maybe half-way through a renewal: look once more after another quiet period.
      retried = true;
      timer = setTimeout(settle, debounceMs);
      timer.unref();
      return;
    }
    retried = false;
    reload('file change');
  };
  const poke = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(settle, debounceMs);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of folders) {
    try {
      const w = watch(dir, { persistent: false }, poke);
      w.on('error', (err) => o.log.warn({ event: 'tls-watch', folder: dir, err: err.message }, `stopped watching ${dir} for certificate changes; renewals need SIGHUP now`));
      watchers.push(w);
    } catch (err) {
      o.log.warn({ event: 'tls-watch', folder: dir, err: (err as Error).message }, `cannot watch ${dir} for certificate changes; send SIGHUP after a renewal`);
    }
  }
  return {
    reload: (reason) => reload(reason),
    close() {
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
