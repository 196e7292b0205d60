// Writes one incoming message into the spool: small messages stay in memory until commit, large
// ones spill to a file in incoming/ as they arrive. commit() resolves only when the message is
// durable in the queue (or quarantine) folder (file fsync, rename, directory fsync): only then may
// 250 be sent. Before that the session may still edit the header block and amend the envelope.
import { createHash, type Hash } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { headerBlockEnd } from '../core/header-block.ts';
import { RawFile, type VectorWritable } from '../core/raw-file.ts';
import { envelopeProblem, type Envelope } from './envelope.ts';
import type { DirSyncer } from './dirsync.ts';
import type { Logger } from '../observe/log.ts';
import { encodeHeader, encodePrefix, PREFIX_LENGTH, shortHash } from './format.ts';

/** Bytes gathered before a write to the spilled file, so small socket chunks become big writes. */
const FLUSH_BYTES = 64 * 1024;
/**
 * Room left after the envelope JSON of a spilled file (spaces, which JSON allows), so fields
 * decided at end of DATA (noBounce, folder) fit at commit without copying a large message.
 */
const HEADER_RESERVE = 256;
/**
 * The longest header block rewriteHead edits. Past it (no empty line yet) the block is taken to
 * end at the last line break before the limit, as Postfix's header_size_limit treats the rest as
 * body.
 */
const MAX_HEAD = 1024 * 1024;

/** What the session decides at end of DATA, after the envelope was written at `spool.begin`. */
export interface CommitAmendment {
  /** No bounce may ever go to the sender, and why (e.g. "spam", "auth-failed"). */
  readonly noBounce?: string;
  /** The envelope sender's domain vouched for it (SPF pass or its DKIM signature). */
  readonly senderVerified?: boolean;
  /** The recipients to keep, when end of DATA dropped some (forwarding.junk); none may be added. */
  readonly recipients?: Envelope['recipients'];
  /** The Maildir++ folder for local delivery (e.g. "Junk"). */
  readonly folder?: string;
  /** 'quarantine': kept for review, never scheduled (kill-level spam). Default 'queue'. */
  readonly area?: 'queue' | 'quarantine';
}

export interface WriterTarget {
  readonly envelope: Omit<Envelope, 'size'>;
  readonly header: Buffer;
  readonly tmpPath: string;
  /** Where the committed file goes: queue/ normally, quarantine/ when a commit chooses it. */
  readonly pathFor: (area: 'queue' | 'hold' | 'quarantine') => string;
  readonly syncer: DirSyncer;
  readonly fsync: boolean;
  /** Bytes kept in memory before the message spills to disk. */
  readonly memoryLimit: number;
  /** Throws once the spool is closed (its lock may belong to another process by then). */
  readonly assertOpen: () => void;
  /**
   * Called after every commit, with the area: the spool starts delivery for 'queue' only, so a
   * quarantined message is never scheduled. A message committed from memory comes with its bytes
   * as written: `header` (the envelope JSON) and `body` (the message), for delivery to use.
   */
  readonly committed: (env: Envelope, area: 'queue' | 'quarantine', written?: CommittedBytes) => void;
  /** Told at debug level of each fsync as it completes (`spool-fsync`, what: file | folder). */
  readonly log?: Logger;
}

/** The bytes of a message committed from memory, exactly as they are in its file. */
export interface CommittedBytes {
  readonly header: Buffer;
  readonly body: Buffer;
}

/** Writes all of `bufs` at `position`, looping over short writes. */
export async function writeAll(fh: VectorWritable, bufs: Buffer[], position: number): Promise<number> {
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
  /** The file of a message committed from memory: written once, by descriptor (core/raw-file.ts). */
  #memFile: RawFile | undefined;
  #pos = 0;
  /** The header as written to the spilled file: the envelope JSON and its reserve of spaces. */
  #fileHeader: Buffer;
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  // Operations run one after another even if a caller forgets to await.
  #tail: Promise<unknown> = Promise.resolve();

  constructor(target: WriterTarget) {
    this.#t = target;
    this.id = target.envelope.id;
    this.#fileHeader = target.header;
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
      this.#assertWritable();
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
      this.#assertWritable();
      if (bytes.length === 0) return;
      if (this.spilled) await this.#copy(this.#fileHeader, [bytes], 0);
      else this.#replaceInMemory([bytes, ...this.#chunks]);
    });
  }

  /**
   * Replaces the header block of the bytes written so far — everything up to and including the
   * first empty line (CRLF or LF), or all of it when there is none — with what `edit` returns:
   * to strip fields a sender must not set, mark the Subject, and add our own fields on top in the
   * same pass. Free in memory; a spilled message is copied once, and not at all when `edit`
   * changes nothing.
   */
  rewriteHead(edit: (head: Buffer) => Buffer): Promise<void> {
    return this.#serial(async () => {
      this.#assertWritable();
      if (!this.spilled) {
        const all = Buffer.concat(this.#chunks);
        const end = headLength(all, true);
        const head = all.subarray(0, end);
        const next = edit(head);
        if (!next.equals(head)) this.#replaceInMemory([next, all.subarray(end)]);
        return;
      }
      const head = await this.#readHead();
      const next = edit(head);
      if (next.equals(head)) return;
      await this.#copy(this.#fileHeader, [next], head.length);
    });
  }

  /** The message bytes written so far, for content checks at end of DATA (before commit). */
  readBack(): Promise<Buffer> {
    return this.#serial(async () => {
      this.#assertWritable();
      if (!this.spilled) return Buffer.concat(this.#chunks);
      await this.#flush();
      return this.#readFile(this.#bodyStart, this.#pos - this.#bodyStart);
    });
  }

  /**
   * Makes the message durable; resolves only after the directory fsync. `amend` sets envelope
   * fields decided after `spool.begin` (the header is written anew: in place in a spilled file
   * when it fits the reserve, else by one copy), and `area: 'quarantine'` keeps the message in
   * the quarantine folder, where nothing schedules it (`committed` says which area).
   */
  commit(amend: CommitAmendment = {}): Promise<void> {
    return this.#serial(async () => {
      this.#assertWritable();
      const t = this.#t;
      t.assertOpen();
      const amended = amend.noBounce !== undefined || amend.folder !== undefined || amend.senderVerified !== undefined || amend.recipients !== undefined;
      const envelope: Omit<Envelope, 'size'> = {
        ...t.envelope,
        ...(amend.noBounce !== undefined ? { noBounce: amend.noBounce } : {}),
        ...(amend.folder !== undefined ? { folder: amend.folder } : {}),
        ...(amend.senderVerified !== undefined ? { senderVerified: amend.senderVerified } : {}),
        ...(amend.recipients !== undefined ? { recipients: amend.recipients } : {}),
      };
      // Refuse now what would be unreadable later: a message acknowledged but unreadable is lost.
      const problem = amended ? envelopeProblem(envelope) : undefined;
      if (problem) throw new Error(`cannot queue message ${this.id}: ${problem}`);
      const header = amended ? encodeHeader(envelope) : t.header;
      const finalPath = t.pathFor(amend.area ?? 'queue');
      this.#state = 'committing';
      let renamed = false;
      let written: CommittedBytes | undefined;
      let closing: Promise<void> | undefined;
      try {
        if (this.#fh) {
          await this.#flush();
          // A spilled file keeps its header length when the new header fits the reserve.
          if (header.length > this.#fileHeader.length) await this.#copy(padded(header), [], 0);
          else this.#fileHeader = padded(header, this.#fileHeader.length);
          await writeAll(this.#fh, [this.#prefix(this.#fileHeader, false), this.#fileHeader], 0);
        } else {
          // One buffer of its own: written with one writev, and kept for delivery without
          // pinning the larger socket buffers the chunks may be slices of.
          const body = ownedConcat(this.#chunks, this.#size);
          this.#memFile = await RawFile.open(t.tmpPath, 'wx', 0o600);
          await writeAll(this.#memFile, [this.#prefix(header, false), header, NEWLINE, body], 0);
          written = { header, body };
          this.#chunks = [];
          this.#buffered = 0;
        }
        if (t.fsync) await this.#sync((this.#fh ?? this.#memFile)!);
        // The descriptor plays no part in durability from here on: it closes while the rename
        // and the folder fsync run (renaming an open file is fine), one wait fewer per commit.
        closing = this.#closeFile();
        closing.catch(() => undefined);
        await rename(t.tmpPath, finalPath);
        renamed = true;
        await this.#syncFolder(dirname(finalPath));
        await closing;
      } catch (err) {
        this.#state = 'aborted';
        await closing?.catch(() => undefined);
        await this.#closeFile().catch(() => undefined);
        // Not durable, so the client hears 4xx and sends again: remove our copy, or it would be
        // delivered twice.
        await unlink(renamed ? finalPath : t.tmpPath).catch(() => undefined);
        throw err;
      }
      this.#state = 'committed';
      t.committed({ ...envelope, size: this.#size }, amend.area ?? 'queue', written);
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

  /** fsync of the message file, logged at debug when it completes. */
  async #sync(file: { sync(): Promise<void> }): Promise<void> {
    await file.sync();
    this.#t.log?.debug({ event: 'spool-fsync', id: this.id, what: 'file' }, 'message file on disk');
  }

  /** The (shared) fsync of the folder the message was renamed into, logged at debug. */
  async #syncFolder(dir: string): Promise<void> {
    await this.#t.syncer.sync(dir);
    if (this.#t.fsync) this.#t.log?.debug({ event: 'spool-fsync', id: this.id, what: 'folder' }, 'message folder entry on disk');
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(fn);
    this.#tail = p.catch(() => undefined);
    return p;
  }

  #assertWritable(): void {
    if (this.#state !== 'open') throw new Error(`spool writer ${this.id} is ${this.#state}`);
  }

  /** Offset of the first message byte in the spilled file. */
  get #bodyStart(): number {
    return PREFIX_LENGTH + this.#fileHeader.length + 1;
  }

  #prefix(header: Buffer, unfinished: boolean): Buffer {
    // The prefix is a placeholder until commit writes the real one in place.
    if (unfinished) return encodePrefix({ headerLength: header.length, bodyLength: 0, headerHash: '0'.repeat(16), bodyHash: '0'.repeat(16) }, true);
    return encodePrefix({ headerLength: header.length, bodyLength: this.#size, headerHash: shortHash(header), bodyHash: this.#hash.digest('hex').slice(0, 16) });
  }

  /** The in-memory message becomes `chunks` (size, peak and hash follow). */
  #replaceInMemory(chunks: Buffer[]): void {
    const hash = createHash('sha256');
    let size = 0;
    for (const c of chunks) {
      hash.update(c);
      size += c.length;
    }
    this.#chunks = chunks;
    this.#size = size;
    this.#buffered = size;
    this.#peak = Math.max(this.#peak, size);
    this.#hash = hash;
  }

  /** The header block of the spilled message, read from the file. */
  async #readHead(): Promise<Buffer> {
    await this.#flush();
    const total = this.#pos - this.#bodyStart;
    let got = Buffer.alloc(0);
    while (got.length < Math.min(total, MAX_HEAD)) {
      const more = await this.#readFile(this.#bodyStart + got.length, Math.min(64 * 1024, total - got.length));
      // Searched from the start each time: the empty line may straddle two reads.
      got = Buffer.concat([got, more]);
      if (headerBlockEnd(got) !== undefined) break;
    }
    return got.subarray(0, headLength(got, got.length === total));
  }

  async #readFile(from: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.#fh!.read(out, got, length - got, from + got);
      if (bytesRead === 0) throw new Error(`spool writer ${this.id}: incoming file ended early`);
      got += bytesRead;
    }
    return out;
  }

  /**
   * Writes the spilled message anew: `header` as the envelope, then `head`, then the old message
   * bytes after its first `skip` bytes; the hash and size follow. The new file replaces the old
   * by rename, so a failure leaves the old one as it was.
   */
  async #copy(header: Buffer, head: readonly Buffer[], skip: number): Promise<void> {
    await this.#flush();
    const t = this.#t;
    const old = this.#fh!;
    const copyPath = `${t.tmpPath}.copy`;
    const fh = await open(copyPath, 'wx+', 0o600);
    try {
      const hash = createHash('sha256');
      for (const b of head) hash.update(b);
      let pos = await writeAll(fh, [this.#prefix(header, true), header, NEWLINE, ...head], 0);
      const end = this.#pos;
      const buf = Buffer.allocUnsafe(1024 * 1024);
      for (let from = this.#bodyStart + skip; from < end; ) {
        const { bytesRead } = await old.read(buf, 0, Math.min(buf.length, end - from), from);
        if (bytesRead === 0) throw new Error(`spool writer ${this.id}: incoming file ended early`);
        const piece = buf.subarray(0, bytesRead);
        hash.update(piece);
        pos = await writeAll(fh, [piece], pos);
        from += bytesRead;
      }
      await rename(copyPath, t.tmpPath);
      await old.close().catch(() => undefined);
      this.#fh = fh;
      this.#pos = pos;
      this.#fileHeader = header;
      this.#size = pos - this.#bodyStart;
      this.#hash = hash;
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(copyPath).catch(() => undefined);
      throw err;
    }
  }

  async #spill(): Promise<void> {
    const t = this.#t;
    // Opened for reading too: content checks read the message back before commit (readBack).
    this.#fh = await open(t.tmpPath, 'wx+', 0o600);
    this.#fileHeader = padded(t.header);
    this.#pos = await writeAll(this.#fh, [this.#prefix(this.#fileHeader, true), this.#fileHeader, NEWLINE], 0);
    if (this.#pos !== this.#bodyStart) throw new Error('spool writer: bad header position');
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
    const fh = this.#fh ?? this.#memFile;
    this.#fh = undefined;
    this.#memFile = undefined;
    if (fh) await fh.close();
  }
}

/** `chunks` (of `size` bytes in all) as one buffer that owns its memory. */
function ownedConcat(chunks: readonly Buffer[], size: number): Buffer {
  const only = chunks.length === 1 ? chunks[0]! : undefined;
  if (only && only.byteOffset === 0 && only.byteLength === only.buffer.byteLength) return only;
  // Not Buffer.concat: below 4 KiB it hands out a slice of a shared pool.
  const out = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const c of chunks) at += c.copy(out, at);
  if (at !== size) throw new Error(`spool writer: ${at} message bytes, expected ${size}`);
  return out;
}

/** `header` followed by spaces up to `length` (default: with the reserve). */
function padded(header: Buffer, length = header.length + HEADER_RESERVE): Buffer {
  return Buffer.concat([header, Buffer.alloc(length - header.length, 0x20)]);
}

/**
 * Length of the header block at the start of `buf`: through the first empty line; all of `buf`
 * when it is the whole message and has none; else cut at the last line break within MAX_HEAD.
 */
function headLength(buf: Buffer, complete: boolean): number {
  const end = headerBlockEnd(buf);
  if (end !== undefined && end <= MAX_HEAD) return end;
  if (complete && buf.length <= MAX_HEAD) return buf.length;
  const cut = buf.lastIndexOf(0x0a, MAX_HEAD - 1);
  return cut + 1;
}

const NEWLINE = Buffer.from('\n');
