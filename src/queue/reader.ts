// Reads spool files back: the envelope and recipient states without the message (one small read
// for most files), and the message itself as a stream that checks its hash at the end, so a
// corrupt body fails the delivery before anything is handed over as complete.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Envelope, RecipientState } from './envelope.ts';
import { bodyOffset, decodeHeader, decodePrefix, decodeTail, PREFIX_LENGTH, type Prefix } from './format.ts';

/** Bytes read up front: the prefix, a typical header and, for small messages, everything. */
const FIRST_READ = 8192;
const BODY_CHUNK = 64 * 1024;
/** State records are small; a tail beyond this is not a tail. */
const MAX_TAIL = 64 * 1024 * 1024;

export class SpoolCorruptError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`corrupt spool file ${path}: ${reason}`);
    this.name = 'SpoolCorruptError';
  }
}

export interface LoadedMessage {
  readonly envelope: Envelope;
  readonly states: RecipientState[];
  readonly prefix: Prefix;
  /** Torn (unacknowledged) state records that were skipped. */
  readonly torn: number;
}

/** A byte range the parser needs next. */
interface Want {
  readonly length: number;
  readonly position: number;
}

/**
 * Parses a spool file of `fileSize` bytes, asking for the byte ranges it needs (most files need
 * one read). Written once as a generator so the synchronous driver (fast listing) and the async
 * driver share every check. Throws SpoolCorruptError.
 */
function* parse(path: string, id: string, fileSize: number, withTail: boolean): Generator<Want, LoadedMessage, Buffer> {
  const first = yield { length: Math.min(fileSize, FIRST_READ), position: 0 };
  const prefix = decodePrefix(first);
  if (typeof prefix === 'string') throw new SpoolCorruptError(path, prefix);
  const headEnd = bodyOffset(prefix);
  const end = headEnd + prefix.bodyLength;
  if (fileSize < end) throw new SpoolCorruptError(path, `truncated: ${fileSize} bytes, the prefix records ${end}`);
  const head = headEnd <= first.length ? first.subarray(PREFIX_LENGTH, headEnd) : yield { length: headEnd - PREFIX_LENGTH, position: PREFIX_LENGTH };
  const envelope = decodeHeader(prefix, head.subarray(0, prefix.headerLength), head[prefix.headerLength], id);
  if (typeof envelope === 'string') throw new SpoolCorruptError(path, envelope);
  if (!withTail) return { envelope, states: [], prefix, torn: 0 };
  const tailLength = fileSize - end;
  if (tailLength > MAX_TAIL) throw new SpoolCorruptError(path, `${tailLength} bytes after the message (body longer than recorded)`);
  const tail = fileSize <= first.length ? first.subarray(end) : yield { length: tailLength, position: end };
  const decoded = decodeTail(tail, envelope.recipients.length);
  if (typeof decoded === 'string') throw new SpoolCorruptError(path, decoded);
  return { envelope, states: decoded.states, prefix, torn: decoded.torn };
}

async function readAt(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

function readAtSync(fd: number, length: number, position: number): Buffer {
  // Unsafe (not zero-filled) is fine: only the bytes actually read are returned.
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

async function parseOpen(fh: FileHandle, path: string, id: string, withTail: boolean): Promise<LoadedMessage> {
  const g = parse(path, id, (await fh.stat()).size, withTail);
  let step = g.next();
  while (!step.done) step = g.next(await readAt(fh, step.value.length, step.value.position));
  return step.value;
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';

/**
 * Loads envelope and states. Resolves undefined when the file does not exist (removed meanwhile);
 * rejects with SpoolCorruptError when it is unusable.
 */
export async function loadMessage(path: string, id: string): Promise<LoadedMessage | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  try {
    return await parseOpen(fh, path, id, true);
  } finally {
    await fh.close();
  }
}

/**
 * The same with synchronous calls, for listing: several times faster than a thread-pool round
 * trip per call when the files are cached. Callers keep their slices short.
 */
export function loadMessageSync(path: string, id: string): LoadedMessage | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  try {
    // One read first, and a stat only when the file fills it: most spool files are smaller, and
    // on a local file system a short read means the end of the file, so the start-up scan saves
    // a syscall per file. Should a read ever come back short before the end, the parse finds the
    // file "truncated": it is then read again with its real size, so no good file is condemned.
    const got = readSync(fd, firstScratch, 0, FIRST_READ, 0);
    if (got < FIRST_READ) {
      try {
        return parseSync(fd, path, id, got, firstScratch.subarray(0, got));
      } catch (err) {
        if (!(err instanceof SpoolCorruptError)) throw err;
      }
    }
    const size = fstatSync(fd).size;
    return parseSync(fd, path, id, size, readAtSync(fd, Math.min(size, FIRST_READ), 0));
  } finally {
    closeSync(fd);
  }
}

/** Drives parse() with synchronous reads, `first` being the first min(size, FIRST_READ) bytes. */
function parseSync(fd: number, path: string, id: string, size: number, first: Buffer): LoadedMessage {
  const g = parse(path, id, size, true);
  let step = g.next();
  if (!step.done) step = g.next(first);
  while (!step.done) step = g.next(readAtSync(fd, step.value.length, step.value.position));
  return step.value;
}

/**
 * The first read's buffer, shared by every synchronous load: parse() keeps nothing of it (it
 * decodes to strings), and a synchronous load cannot interleave with another.
 */
const firstScratch = Buffer.allocUnsafe(FIRST_READ);

/**
 * The message bytes of a spool file. Errors with SpoolCorruptError (after calling `onCorrupt`)
 * when the bytes do not match the recorded length and hash — before the last byte is handed on,
 * so a consumer that commits only on a clean end never commits a corrupt message.
 */
export class BodyStream extends Readable {
  #fh: FileHandle | undefined;
  #pos = 0;
  #end = 0;
  #expectedHash = '';
  #verified = false;
  readonly #hash: Hash = createHash('sha256');

  /** `missing`: the message is deleted (journaled); the stream fails as for a removed file. */
  constructor(
    readonly path: string,
    readonly id: string,
    private readonly onCorrupt: (err: SpoolCorruptError) => Promise<void>,
    private readonly missing = false,
  ) {
    super({ highWaterMark: BODY_CHUNK });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.#openFile().then(
      () => callback(),
      (err: unknown) => callback(err as Error),
    );
  }

  async #openFile(): Promise<void> {
    if (this.missing) throw new Error(`message ${this.id} is not in the spool (deleted)`);
    try {
      this.#fh = await open(this.path, 'r');
    } catch (err) {
      if (isMissing(err)) throw new Error(`message ${this.id} is not in the spool (${this.path})`);
      throw err;
    }
    try {
      const { prefix } = await parseOpen(this.#fh, this.path, this.id, false);
      this.#pos = bodyOffset(prefix);
      this.#end = this.#pos + prefix.bodyLength;
      this.#expectedHash = prefix.bodyHash;
    } catch (err) {
      throw await this.#corrupt(err);
    }
  }

  override _read(): void {
    this.#readChunk().then(
      (chunk) => this.push(chunk),
      (err: unknown) => this.destroy(err as Error),
    );
  }

  async #readChunk(): Promise<Buffer | null> {
    try {
      const want = Math.min(BODY_CHUNK, this.#end - this.#pos);
      if (want === 0) {
        this.#verify();
        return null;
      }
      const chunk = await readAt(this.#fh!, want, this.#pos);
      if (chunk.length < want) throw new SpoolCorruptError(this.path, 'truncated while reading the message');
      this.#pos += chunk.length;
      this.#hash.update(chunk);
      // Verify before the last chunk leaves, so a consumer never sees a clean end on bad data.
      if (this.#pos === this.#end) this.#verify();
      return chunk;
    } catch (err) {
      throw await this.#corrupt(err);
    }
  }

  #verify(): void {
    if (this.#verified) return;
    this.#verified = true;
    const got = this.#hash.digest('hex').slice(0, 16);
    if (got !== this.#expectedHash) throw new SpoolCorruptError(this.path, 'message checksum mismatch');
  }

  async #corrupt(err: unknown): Promise<unknown> {
    if (err instanceof SpoolCorruptError) await this.onCorrupt(err).catch(() => undefined);
    return err;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const fh = this.#fh;
    this.#fh = undefined;
    if (!fh) return callback(error);
    fh.close().then(
      () => callback(error),
      () => callback(error),
    );
  }
}

/**
 * The message bytes of a message committed from memory moments ago (see FreshCache): the same
 * bytes the file holds, hashed when they were committed, handed on in the chunks BodyStream uses.
 */
export class MemoryBodyStream extends Readable {
  #pos = 0;

  constructor(
    readonly id: string,
    private readonly bytes: Buffer,
  ) {
    super({ highWaterMark: BODY_CHUNK });
  }

  override _read(): void {
    if (this.#pos >= this.bytes.length) {
      this.push(null);
      return;
    }
    const end = Math.min(this.#pos + BODY_CHUNK, this.bytes.length);
    const chunk = this.bytes.subarray(this.#pos, end);
    this.#pos = end;
    this.push(chunk);
  }
}
