// Password hashing with scrypt (node:crypto) in a self-describing string:
//   $scrypt$ln=15,r=8,p=1$<salt, base64 without padding>$<hash, base64 without padding>
// Verification is constant-time, and a check against no stored hash costs the same as a real one.
// Logins verify on a HashPool (threads of its own): node's scrypt() runs on libuv's shared
// threadpool, where a password spray would queue ahead of the spool's fs calls.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { WorkerPool, WorkerPoolFullError } from './worker-pool.ts';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

export interface ParsedPasswordHash extends ScryptParams {
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** Current cost: N = 2^15, r = 8 takes 32 MiB and about 70 ms per hash on a small server. */
export const DEFAULT_PARAMS: ScryptParams = Object.freeze({ ln: 15, r: 8, p: 1 });

const SALT_BYTES = 16;
const HASH_BYTES = 32;
// Bounds on what a stored string may ask for, so an edited file cannot make a login allocate
// gigabytes or spin for minutes.
const MAX_MEMORY = 256 * 1024 * 1024;
const LIMITS = { ln: [10, 20], r: [1, 32], p: [1, 16], salt: [16, 64] } as const;

const FORMAT = /^\$scrypt\$ln=([0-9]{1,2}),r=([0-9]{1,2}),p=([0-9]{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function memoryFor(params: ScryptParams): number {
  return 128 * 2 ** params.ln * params.r * params.p;
}

/** One key derivation as a hashing thread receives it (password-worker.ts). */
export interface DeriveRequest {
  readonly password: Uint8Array;
  readonly salt: Uint8Array;
  readonly keylen: number;
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly maxmem: number;
}

const WORKER_URL = new URL(`./password-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export { WorkerPoolFullError as HashPoolFullError };

/**
 * Threads that do nothing but scrypt, with a bound on logins waiting for one: past it, verify()
 * rejects at once with HashPoolFullError (AUTH answers 454) instead of queueing without end.
 */
export class HashPool {
  private readonly pool: WorkerPool<DeriveRequest, Uint8Array>;
  readonly #counts = { hashed: 0, refused: 0 };

  constructor(opts: { readonly threads: number; readonly maxQueued: number }) {
    this.pool = new WorkerPool({ url: WORKER_URL, name: 'password-hash', size: opts.threads, maxQueued: opts.maxQueued });
  }

  get threads(): number {
    return this.pool.size;
  }

  /** verifyPassword() on this pool's threads. */
  verify(password: string, stored: string | undefined): Promise<boolean> {
    return verifyPassword(password, stored, this);
  }

  /**
   * Key derivations this pool finished, and those refused because it was full, since it started
   * (mailward_password_hashes_total): a login of an unknown user shows here as one more hash,
   * the same as a known one.
   */
  get counts(): { readonly hashed: number; readonly refused: number } {
    return { ...this.#counts };
  }

  /** @internal used by derive() */
  async run(req: DeriveRequest): Promise<Uint8Array> {
    try {
      const key = await this.pool.run(req);
      this.#counts.hashed++;
      return key;
    } catch (err) {
      if (err instanceof WorkerPoolFullError) this.#counts.refused++;
      throw err;
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

async function derive(password: string, salt: Buffer, params: ScryptParams, keylen: number, pool?: HashPool): Promise<Buffer> {
  const options = {
    N: 2 ** params.ln,
    r: params.r,
    p: params.p,
    // Node refuses N*r*128 > maxmem (32 MiB by default); leave headroom.
    maxmem: memoryFor(params) * 2,
  } satisfies ScryptOptions;
  // RFC 8265 §4.2 (OpaqueString): normalise to NFC so the same password typed on two systems matches.
  const pw = Buffer.from(password.normalize('NFC'), 'utf8');
  if (pool) {
    const key = await pool.run({ password: pw, salt, keylen, ...options });
    return Buffer.from(key.buffer, key.byteOffset, key.byteLength);
  }
  return new Promise((resolve, reject) => {
    scrypt(pw, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

function inRange(v: number, [lo, hi]: readonly [number, number]): boolean {
  return v >= lo && v <= hi;
}

/** Parses a stored hash string; the error says what is wrong with it (never shows the string). */
export function parsePasswordHash(stored: string): { ok: true; value: ParsedPasswordHash } | { ok: false; error: string } {
  const m = FORMAT.exec(stored);
  if (!m) return { ok: false, error: 'not a $scrypt$ln=..,r=..,p=..$salt$hash string' };
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const salt = Buffer.from(m[4] ?? '', 'base64');
  const hash = Buffer.from(m[5] ?? '', 'base64');
  if (!inRange(ln, LIMITS.ln) || !inRange(r, LIMITS.r) || !inRange(p, LIMITS.p)) {
    return { ok: false, error: `scrypt parameters out of range (ln ${LIMITS.ln.join('..')}, r ${LIMITS.r.join('..')}, p ${LIMITS.p.join('..')})` };
  }
  if (memoryFor({ ln, r, p }) > MAX_MEMORY) return { ok: false, error: 'scrypt parameters need too much memory' };
  if (!inRange(salt.length, LIMITS.salt)) return { ok: false, error: 'salt length out of range' };
  // Exactly HASH_BYTES: scrypt's shorter outputs are prefixes of longer ones, so a truncated
  // stored hash would otherwise still verify.
  if (hash.length !== HASH_BYTES) return { ok: false, error: `hash is not ${HASH_BYTES} bytes` };
  return { ok: true, value: { ln, r, p, salt, hash } };
}

/** Hashes a password for storage. Refuses an empty one. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_PARAMS): Promise<string> {
  if (password.length === 0) throw new Error('password must not be empty');
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, params, HASH_BYTES);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`;
}

// A fixed target for checks without a stored hash: the work is the same as a real check.
const DUMMY: ParsedPasswordHash = { ...DEFAULT_PARAMS, salt: randomBytes(SALT_BYTES), hash: randomBytes(HASH_BYTES) };

/**
 * True when `password` matches `stored`. An undefined (unknown user) or malformed stored string
 * returns false after doing the same scrypt work as a real check, so timing does not tell
 * which logins exist. Never throws for a bad stored string. With a pool, the work runs on its
 * threads (and rejects with HashPoolFullError when it is full).
 */
export async function verifyPassword(password: string, stored: string | undefined, pool?: HashPool): Promise<boolean> {
  const parsed = stored === undefined ? undefined : parsePasswordHash(stored);
  const target = parsed?.ok ? parsed.value : DUMMY;
  const candidate = await derive(password, target.salt, target, target.hash.length, pool);
  return timingSafeEqual(candidate, target.hash) && target !== DUMMY;
}

/** Burns the work of one verification and returns false (for a login that does not exist). */
export function verifyAgainstDummy(password: string): Promise<boolean> {
  return verifyPassword(password, undefined);
}
