// The SRS secrets in dataDir/srs-keys (mode 0600, made on first use): one key a line,
// "<created ISO time> <secret>", newest first. The newest signs; every listed key verifies, so a
// rotation breaks no bounce under way. The file is read again when it changes (a `mailward srs
// rotate` while the server runs takes effect at the next forward or bounce, in every process).
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { srsForward, srsReverse, type SrsReversal } from '../core/srs.ts';
import type { Config } from '../config/load.ts';

export interface SrsKey {
  readonly created: number;
  readonly secret: string;
}

const DAY_MS = 86_400_000;

/** A short, safe name of a key for logs and `mailward srs keys` (never the secret itself). */
export const keyFingerprint = (secret: string): string => createHash('sha256').update(secret).digest('hex').slice(0, 12);

const newSecret = (): string => randomBytes(24).toString('base64url');

function parseKeys(text: string, file: string): SrsKey[] {
  const keys: SrsKey[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(\S{16,})$/.exec(line);
    const created = m ? Date.parse(m[1]!) : NaN;
    if (!m || Number.isNaN(created)) throw new Error(`${file} line ${i + 1}: expected "<ISO time> <secret of at least 16 characters>"; fix the line or remove the file to start with a new key`);
    keys.push({ created, secret: m[2]! });
  }
  return keys;
}

/** Writes a key file whole in a new file beside `file`, readable by its owner only; returns its path. */
function writeTemp(file: string, keys: readonly SrsKey[]): string {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `# Mailward SRS keys, newest first: the first signs, all verify (mailward srs rotate)\n${keys.map((k) => `${new Date(k.created).toISOString()} ${k.secret}\n`).join('')}`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600);
  return tmp;
}

export class SrsKeyFile {
  readonly #file: string;
  readonly #clock: () => number;
  #cache: { stamp: string; keys: SrsKey[] } | undefined;

  constructor(file: string, clock: () => number = Date.now) {
    this.#file = file;
    this.#clock = clock;
  }

  get path(): string {
    return this.#file;
  }

  /** The keys, newest first; the file is made with one new key when it does not exist. */
  keys(): readonly SrsKey[] {
    let st;
    try {
      st = statSync(this.#file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.#create();
      st = statSync(this.#file);
    }
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (this.#cache?.stamp === stamp) return this.#cache.keys;
    const keys = parseKeys(readFileSync(this.#file, 'utf8'), this.#file);
    if (keys.length === 0) throw new Error(`${this.#file} holds no key; remove the file to start with a new key`);
    this.#cache = { stamp, keys };
    return keys;
  }

  /**
   * Puts a new key first. A key stays while an address it signed may still be valid: it is dropped
   * once the key that replaced it is older than `maxAgeDays`. Returns the keys now listed.
   */
  rotate(maxAgeDays: number): { readonly added: SrsKey; readonly dropped: readonly SrsKey[]; readonly keys: readonly SrsKey[] } {
    const now = this.#clock();
    const old = this.keys();
    const added = { created: now, secret: newSecret() };
    const all = [added, ...old];
    // all[i] was replaced when all[i - 1] was made; past maxAge nothing it signed verifies anyway.
    const kept = all.filter((k, i) => i === 0 || now - all[i - 1]!.created <= maxAgeDays * DAY_MS);
    renameSync(writeTemp(this.#file, kept), this.#file);
    this.#cache = undefined;
    return { added, dropped: all.filter((k) => !kept.includes(k)), keys: kept };
  }

  #create(): void {
    const tmp = writeTemp(this.#file, [{ created: this.#clock(), secret: newSecret() }]);
    try {
      // A link never replaces: when two processes start at once, one key file wins, whole.
      linkSync(tmp, this.#file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(tmp);
    }
  }
}

/** SRS as the server uses it: rewriting forwarded senders and reversing bounces to SRS addresses. */
export interface Srs {
  /** The domain SRS addresses are in. */
  readonly domain: string;
  /** The SRS sender for a forwarded copy from `sender`; undefined for a sender of our own domains. */
  forward(sender: string): string | undefined;
  /** The address an SRS address of ours stands for, or why it is refused. */
  reverse(address: string): SrsReversal;
}

export function createSrs(o: { readonly keys: SrsKeyFile; readonly domain: string; readonly maxAgeDays: number; readonly ownDomains: readonly string[]; readonly clock: () => number }): Srs {
  const own = new Set(o.ownDomains.map((d) => d.toLowerCase()));
  return {
    domain: o.domain,
    forward: (sender) => {
      const at = sender.lastIndexOf('@');
      // Our own senders pass SPF here already (and are DKIM-signed); the null sender has no domain.
      if (at < 0 || own.has(sender.slice(at + 1).toLowerCase())) return undefined;
      return srsForward(sender, o.domain, o.keys.keys()[0]!.secret, o.clock());
    },
    reverse: (address) => srsReverse(address, o.keys.keys().map((k) => k.secret), o.clock(), o.maxAgeDays),
  };
}

/** SRS as forwarding.srs configures it, or undefined when it is off. */
export function srsFromConfig(config: Config, clock: () => number = Date.now): Srs | undefined {
  const s = config.forwarding.srs;
  if (!s.enabled) return undefined;
  return createSrs({ keys: new SrsKeyFile(config.paths.srsKeys, clock), domain: s.domain, maxAgeDays: s.maxAge, ownDomains: config.domains, clock });
}
