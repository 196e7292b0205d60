// Writes one incoming message into the spool: small messages stay in memory until commit, large
// ones spill to a file in incoming/ as they arrive. commit() resolves only when the message is
// durable in the queue folder (file fsync, rename, directory fsync): only then may 250 be sent.
import { createHash, type Hash } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import type { Envelope } from './envelope.ts';
import type { DirSyncer } from './dirsync.ts';
import { encodePrefix, PREFIX_LENGTH, shortHash } from './format.ts';

/** Bytes gathered before a write to the spilled file, so small socket chunks become big writes. */
const FLUSH_BYTES = 64 * 1024;

export interface WriterTarget {
  readonly envelope: Omit<Envelope, 'size'>;
  readonly header: Buffer;
  readonly tmpPath: string;
  readonly finalDir: string;
  readonly finalPath: string;
  /** Where the message file lives in another spool area (a commit may choose quarantine). */
  readonly pathFor: (area: 'queue' | 'hold' | 'quarantine') => string;
  readonly syncer: DirSyncer;
  readonly fsync: boolean;
  /** Bytes kept in memory before the message spills to disk. */
  readonly memoryLimit: number;
  /** Throws once the spool is closed (its lock may belong to another process by then). */
  readonly assertOpen: () => void;
  readonly committed: (env: Envelope) => void;
}

/** Writes all of `bufs` at `position`, looping over short writes. */
export async function writeAll(fh: FileHandle, bufs: Buffer[], position: number): Promise<number> {
  let pos = position;
  let rest = bufs.filter((b) => b.length > 0);
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, pos);
    pos += bytesWritten;
    let skip = bytesWritten;
    while (rest.length > 0 && skip >= rest[0]!.length) skip -= rest.shift()!.length;
    if (skip > 0 && rest.length > 0) rest = [rest[0]!.subarray(skip), ...rest.slice(1)];
  }
  return pos;
}

export class SpoolWriter {
  readonly id: string;
  readonly #t: WriterTarget;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #peak = 0;
  #size = 0;
  #hash: Hash = createHash('sha256');
  #fh: FileHandle | undefined;
  #pos = 0;
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  // Operations run one after another even if a caller forgets to await.
  #tail: Promise<unknown> = Promise.resolve();

  constructor(target: WriterTarget) {
    this.#t = target;
    this.id = target.envelope.id;
  }

  /** Message bytes written so far. */
  get size(): number {
    return this.#size;
  }
  /** Message bytes held in memory right now. */
  get bufferedBytes(): number {
    return this.#buffered;
  }
  /** The most message bytes ever held in memory at once. */
  get peakBufferedBytes(): number {
    return this.#peak;
  }
  /** True once the message went to a file in incoming/. */
  get spilled(): boolean {
    return this.#fh !== undefined || this.#pos > 0;
  }

  /** Appends message bytes. The caller must not change `chunk` afterwards. */
  write(chunk: Buffer): Promise<void> {
    return this.#serial(async () => {
      if (this.#state !== 'open') throw new Error(`spool writer ${this.id} is ${this.#state}`);
      if (chunk.length === 0) return;
      this.#hash.update(chunk);
      this.#size += chunk.length;
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      this.#peak = Math.max(this.#peak, this.#buffered);
      if (this.#fh) {
        if (this.#buffered >= FLUSH_BYTES) await this.#flush();
      } else if (this.#buffered > this.#t.memoryLimit) {
        await this.#spill();
      }
    });
  }

  /**
   * Puts `bytes` (header fields decided at end of DATA: Authentication-Results, X-Spam-*) before
   * everything written so far. In memory this is free; a spilled message is copied once into a
   * new incoming file (rare: only messages above the memory limit).
   */
  prepend(bytes: Buffer): Promise<void> {
    return this.#serial(async () => {
      if (this.#state !== 'open') throw new Error(`spool writer ${this.id} is ${this.#state}`);
      if (bytes.length === 0) return;
      if (!this.spilled) {
        this.#chunks.unshift(bytes);
        this.#size += bytes.length;
        this.#buffered += bytes.length;
        this.#peak = Math.max(this.#peak, this.#buffered);
        const hash = createHash('sha256');
        for (const c of this.#chunks) hash.update(c);
        this.#hash = hash;
        return;
      }
      await this.#flush();
      const t = this.#t;
      const old = this.#fh!;
      const bodyStart = PREFIX_LENGTH + t.header.length + 1;
      const copyPath = `${t.tmpPath}.copy`;
      const fh = await open(copyPath, 'wx+', 0o600);
      try {
        const hash = createHash('sha256').update(bytes);
        const placeholder = encodePrefix({ headerLength: t.header.length, bodyLength: 0, headerHash: '0'.repeat(16), bodyHash: '0'.repeat(16) }, true);
        let pos = await writeAll(fh, [placeholder, t.header, NEWLINE, bytes], 0);
        const buf = Buffer.allocUnsafe(1024 * 1024);
        for (let from = bodyStart; from < this.#pos; ) {
          const { bytesRead } = await old.read(buf, 0, Math.min(buf.length, this.#pos - from), from);
          if (bytesRead === 0) throw new Error(`spool writer ${this.id}: incoming file ended early`);
          const piece = buf.subarray(0, bytesRead);
          hash.update(piece);
          pos = await writeAll(fh, [piece], pos);
          from += bytesRead;
        }
        await rename(copyPath, t.tmpPath);
        await old.close();
        this.#fh = fh;
        this.#pos = pos;
        this.#size += bytes.length;
        this.#hash = hash;
      } catch (err) {
        await fh.close().catch(() => undefined);
        await unlink(copyPath).catch(() => undefined);
        throw err;
      }
    });
  }

  /** The message bytes written so far, for content checks at end of DATA (before commit). */
  readBack(): Promise<Buffer> {
    return this.#serial(async () => {
      if (this.#state !== 'open') throw new Error(`spool writer ${this.id} is ${this.#state}`);
      if (!this.spilled) return Buffer.concat(this.#chunks);
      await this.#flush();
      const bodyStart = PREFIX_LENGTH + this.#t.header.length + 1;
      const out = Buffer.allocUnsafe(this.#pos - bodyStart);
      let got = 0;
      while (got < out.length) {
        const { bytesRead } = await this.#fh!.read(out, got, out.length - got, bodyStart + got);
        if (bytesRead === 0) throw new Error(`spool writer ${this.id}: incoming file ended early`);
        got += bytesRead;
      }
      return out;
    });
  }

  /** Makes the message durable in the queue; resolves only after the directory fsync. */
  commit(): Promise<void> {
    return this.#serial(async () => {
      if (this.#state !== 'open') throw new Error(`spool writer ${this.id} is ${this.#state}`);
      const t = this.#t;
      t.assertOpen();
      this.#state = 'committing';
      let renamed = false;
      try {
        const prefix = encodePrefix({ headerLength: t.header.length, bodyLength: this.#size, headerHash: shortHash(t.header), bodyHash: this.#hash.digest('hex').slice(0, 16) });
        if (this.#fh) {
          await this.#flush();
          await writeAll(this.#fh, [prefix], 0);
        } else {
          this.#fh = await open(t.tmpPath, 'wx', 0o600);
          await writeAll(this.#fh, [prefix, t.header, NEWLINE, ...this.#chunks], 0);
          this.#chunks = [];
          this.#buffered = 0;
        }
        if (t.fsync) await this.#fh.sync();
        await this.#closeFile();
        await rename(t.tmpPath, t.finalPath);
        renamed = true;
        await t.syncer.sync(t.finalDir);
      } catch (err) {
        this.#state = 'aborted';
        await this.#closeFile().catch(() => undefined);
        // Not durable, so the client hears 4xx and sends again: remove our copy, or it would be
        // delivered twice.
        await unlink(renamed ? t.finalPath : t.tmpPath).catch(() => undefined);
        throw err;
      }
      this.#state = 'committed';
      t.committed({ ...t.envelope, size: this.#size });
    });
  }

  /** Forgets the message and removes its temporary file. Does nothing after a commit. */
  abort(): Promise<void> {
    return this.#serial(async () => {
      if (this.#state === 'committed' || this.#state === 'aborted') return;
      this.#state = 'aborted';
      this.#chunks = [];
      this.#buffered = 0;
      const hadFile = this.spilled;
      await this.#closeFile().catch(() => undefined);
      if (hadFile) await unlink(this.#t.tmpPath).catch(() => undefined);
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(fn);
    this.#tail = p.catch(() => undefined);
    return p;
  }

  async #spill(): Promise<void> {
    const t = this.#t;
    // Opened for reading too: content checks read the message back before commit (readBack).
    this.#fh = await open(t.tmpPath, 'wx+', 0o600);
    // The prefix is a placeholder until commit writes the real one in place.
    const placeholder = encodePrefix({ headerLength: t.header.length, bodyLength: 0, headerHash: '0'.repeat(16), bodyHash: '0'.repeat(16) }, true);
    this.#pos = await writeAll(this.#fh, [placeholder, t.header, NEWLINE], 0);
    if (this.#pos !== PREFIX_LENGTH + t.header.length + 1) throw new Error('spool writer: bad header position');
    await this.#flush();
  }

  async #flush(): Promise<void> {
    if (!this.#fh || this.#chunks.length === 0) return;
    const chunks = this.#chunks;
    this.#pos = await writeAll(this.#fh, chunks, this.#pos);
    this.#chunks = [];
    this.#buffered = 0;
  }

  async #closeFile(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh) await fh.close();
  }
}

const NEWLINE = Buffer.from('\n');
