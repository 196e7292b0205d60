// The catalog snapshot: the queue catalog's facts of every message in one file, so a start reads
// the folder listings and this file instead of 400,000 message files; and the change logs that
// name every message whose file was appended to since, so a stale snapshot is never trusted for
// it. The files stay the truth: docs/decisions/0018-startup.md, "Catalog snapshot".
import { createHash } from 'node:crypto';
import { open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isQueueId } from '../core/ids.ts';
import type { Logger } from '../observe/log.ts';
import type { RowFacts } from './catalog.ts';
import { C_COUNT, cellsDueAt, HEAD, LOGIN_NONE, MAILBOX_NONE, MAILBOX_SAME, PER_RECIPIENT, STATUS_CODE } from './snapshot-layout.ts';
import { fsyncPath } from './dirsync.ts';

export const SNAPSHOT_FILE = 'catalog.snap';
const TMP_FILE = 'catalog.snap.tmp';
const LOG_PREFIX = 'catalog.changed.';
// Version 2 added the login cell; a version-1 snapshot is discarded (bad magic) and the files are read.
const MAGIC = 'MWCATALOG2 ';
const ID_LENGTH = 17;
// A message's cells: snapshot-layout.ts.

interface Meta {
  readonly seq: number;
  readonly writtenAt: number;
  readonly entries: number;
  readonly idBytes: number;
  readonly stringBytes: number;
  readonly cells: number;
  readonly sha: string;
}

/**
 * A snapshot read back: where each message's cells start, less the messages a change log names.
 * The catalog loads a row straight from the cells (Catalog.snapshotLoader): no object per message.
 */
export class LoadedSnapshot {
  readonly #at: Map<string, number>;
  constructor(
    readonly path: string,
    readonly writtenAt: number,
    at: Map<string, number>,
    readonly cells: Float64Array,
    readonly strings: readonly string[],
    /** Ids named by a change log: their files are read. */
    readonly changed: number,
  ) {
    this.#at = at;
  }

  get size(): number {
    return this.#at.size;
  }

  /** Where the cells of `id` start, if the snapshot has it and no change log names it. */
  offset(id: string): number | undefined {
    return this.#at.get(id);
  }

  /** When the message at `at` is due (schedule.ts messageDueAt on its cells); undefined: every recipient final. */
  dueAt(at: number, now: number): number | undefined {
    return cellsDueAt(this.cells, at, now);
  }
}

/** Builds a snapshot's bytes, one message at a time. */
export class SnapshotEncoder {
  #ids: string[] = [];
  #cells: number[] = [];
  readonly #strings: string[] = [];
  readonly #index = new Map<string, number>();

  #str(s: string): number {
    let i = this.#index.get(s);
    if (i === undefined) {
      i = this.#strings.length;
      this.#strings.push(s);
      this.#index.set(s, i);
    }
    return i;
  }

  add(id: string, f: RowFacts): void {
    this.#ids.push(id);
    const c = this.#cells;
    c.push(f.held ? 1 : 0, f.receivedAt, this.#str(f.mailFrom), f.login === undefined ? LOGIN_NONE : this.#str(f.login), f.recipients.length);
    for (const r of f.recipients) {
      c.push(this.#str(r.address), r.mailbox === undefined ? MAILBOX_NONE : r.mailbox === r.address ? MAILBOX_SAME : this.#str(r.mailbox), STATUS_CODE[r.status], r.next);
    }
  }

  get entries(): number {
    return this.#ids.length;
  }

  finish(seq: number, writtenAt: number): Buffer {
    const ids = Buffer.from(this.#ids.join(''), 'latin1');
    const strings = Buffer.from(JSON.stringify(this.#strings), 'utf8');
    const pad = Buffer.alloc((8 - ((ids.length + strings.length) % 8)) % 8);
    const cells = Buffer.from(Float64Array.from(this.#cells).buffer);
    const payload = Buffer.concat([ids, strings, pad, cells]);
    const meta: Meta = { seq, writtenAt, entries: this.#ids.length, idBytes: ids.length, stringBytes: strings.length, cells: this.#cells.length, sha: sha(payload) };
    const json = JSON.stringify(meta);
    return Buffer.concat([Buffer.from(`${MAGIC}${String(json.length).padStart(8, '0')}\n${json}\n`, 'latin1'), payload]);
  }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex').slice(0, 32);

/** The meta line and where the payload starts; a string is why the file is unusable. */
function readMeta(buf: Buffer): { meta: Meta; start: number } | string {
  if (buf.length < MAGIC.length + 9 || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) return 'not a catalog snapshot (bad magic)';
  const len = Number(buf.toString('latin1', MAGIC.length, MAGIC.length + 8));
  const start = MAGIC.length + 9 + len + 1;
  if (!Number.isInteger(len) || buf.length < start) return 'truncated (meta line)';
  let meta: Meta;
  try {
    meta = JSON.parse(buf.toString('utf8', MAGIC.length + 9, start - 1)) as Meta;
  } catch {
    return 'meta line is not JSON';
  }
  if (!Number.isInteger(meta.seq) || !Number.isInteger(meta.entries) || typeof meta.sha !== 'string') return 'meta line malformed';
  return { meta, start };
}

const logName = (seq: number): string => `${LOG_PREFIX}${seq}`;

/**
 * The snapshot file and its change logs in a spool. `note(id)` is awaited before every append to
 * a message file (Spool.markRecipients): the id is in a change log, durably, before the file
 * changes, so a start after a crash reads that file instead of trusting the snapshot.
 */
export class CatalogSnapshots {
  readonly #root: string;
  readonly #fsync: boolean;
  readonly #log: Logger;
  /** The snapshot's sequence number on disk (undefined: none usable). */
  #seq: number | undefined;
  /** The change log appended to now, and its number. */
  #fh: FileHandle | undefined;
  #fhSeq = 0;
  #older: FileHandle[] = [];
  readonly #noted = new Set<string>();
  #batch: string[] = [];
  #next: Promise<void> | undefined;
  #writing: Promise<void> | undefined;
  #closed = false;
  /** Rotations and snapshot writes under way: close() waits for them. */
  readonly #ops = new Set<Promise<unknown>>();

  private constructor(root: string, fsync: boolean, log: Logger) {
    this.#root = root;
    this.#fsync = fsync;
    this.#log = log;
  }

  get path(): string {
    return join(this.#root, SNAPSHOT_FILE);
  }

  /**
   * Reads the snapshot's meta line and opens its newest change log for appending. A snapshot
   * whose meta line cannot be read, or whose change log is missing, is removed at once (logged):
   * no change would be noted for it, so it must never be trusted later.
   */
  static async open(root: string, opts: { readonly fsync: boolean; readonly log: Logger }): Promise<CatalogSnapshots> {
    const s = new CatalogSnapshots(root, opts.fsync, opts.log);
    await unlink(join(root, TMP_FILE)).catch(() => undefined);
    const logs = await s.#logs();
    let head: Buffer | undefined;
    try {
      const fh = await open(s.path, 'r');
      try {
        const b = Buffer.alloc(4096);
        const { bytesRead } = await fh.read(b, 0, b.length, 0);
        head = b.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') await s.#discard(`cannot be read (${(err as Error).message})`);
    }
    if (head) {
      const m = readMeta(head);
      if (typeof m === 'string') await s.#discard(m);
      else if (!logs.includes(m.meta.seq)) await s.#discard(`its change log ${logName(m.meta.seq)} is missing`);
      else s.#seq = m.meta.seq;
    }
    // Logs older than the snapshot are covered by it; without a snapshot none is needed.
    for (const n of logs) if (s.#seq === undefined || n < s.#seq) await unlink(join(root, logName(n))).catch(() => undefined);
    if (s.#seq !== undefined) {
      const newest = Math.max(...logs.filter((n) => n >= s.#seq!));
      s.#fh = await open(join(root, logName(newest)), 'a');
      s.#fhSeq = newest;
    }
    return s;
  }

  async #logs(): Promise<number[]> {
    const out: number[] = [];
    for (const name of await readdir(this.#root)) {
      if (!name.startsWith(LOG_PREFIX)) continue;
      const n = Number(name.slice(LOG_PREFIX.length));
      if (Number.isInteger(n) && n > 0) out.push(n);
    }
    return out.sort((a, b) => a - b);
  }

  /** Removes an unusable snapshot (durably) and says so, naming the file; the start reads every file. */
  async #discard(reason: string): Promise<void> {
    this.#seq = undefined;
    this.#log.warn({ event: 'catalog-snapshot-invalid', path: this.path, reason }, `catalog snapshot ${this.path} not used (${reason}); the queue is read from its files`);
    await unlink(this.path).catch(() => undefined);
    if (this.#fsync) await fsyncPath(this.#root);
  }

  /**
   * The snapshot with the ids of every change log since it taken out; undefined (and the file
   * removed, logged) when there is none or it fails its checks.
   */
  async load(): Promise<LoadedSnapshot | undefined> {
    const seq = this.#seq;
    if (seq === undefined) return undefined;
    let buf: Buffer;
    try {
      buf = await readFile(this.path);
    } catch (err) {
      await this.#discard(`cannot be read (${(err as Error).message})`);
      return undefined;
    }
    const m = readMeta(buf);
    if (typeof m === 'string') return void (await this.#discard(m));
    const { meta, start } = m;
    if (meta.seq !== seq) return void (await this.#discard('replaced while the spool was open'));
    const payload = buf.subarray(start);
    const cellStart = meta.idBytes + meta.stringBytes + ((8 - ((meta.idBytes + meta.stringBytes) % 8)) % 8);
    if (meta.idBytes !== meta.entries * ID_LENGTH || payload.length !== cellStart + meta.cells * 8) return void (await this.#discard(`truncated: ${payload.length} bytes of payload`));
    if (sha(payload) !== meta.sha) return void (await this.#discard('checksum mismatch'));
    let strings: string[];
    try {
      strings = JSON.parse(payload.toString('utf8', meta.idBytes, meta.idBytes + meta.stringBytes)) as string[];
    } catch {
      return void (await this.#discard('string table is not JSON'));
    }
    // A copy: the payload's offset in the file is not a multiple of 8.
    const cells = new Float64Array(meta.cells);
    new Uint8Array(cells.buffer).set(payload.subarray(cellStart, cellStart + meta.cells * 8));
    const changed = await this.#changedIds(seq);
    const at = new Map<string, number>();
    const ids = payload.toString('latin1', 0, meta.idBytes);
    for (let i = 0, p = 0; i < meta.entries; i++) {
      const id = ids.slice(i * ID_LENGTH, (i + 1) * ID_LENGTH);
      if (p + HEAD > cells.length) return void (await this.#discard('cells end early'));
      const n = cells[p + C_COUNT]!;
      if (!changed.has(id)) at.set(id, p);
      p += HEAD + PER_RECIPIENT * n;
    }
    return new LoadedSnapshot(this.path, meta.writtenAt, at, cells, strings, changed.size);
  }

  /** Every id in the change logs from `seq` on (a torn last line is no id, and was never followed by its append). */
  async #changedIds(seq: number): Promise<Set<string>> {
    const out = new Set<string>();
    for (const n of await this.#logs()) {
      if (n < seq) continue;
      for (const line of (await readFile(join(this.#root, logName(n)), 'latin1')).split('\n')) if (isQueueId(line)) out.add(line);
    }
    return out;
  }

  /**
   * Resolves once `id` is durably in the current change log (at once when it is already, or
   * when there is no snapshot). Concurrent notes share one write and one fdatasync.
   */
  note(id: string): Promise<void> {
    if (!this.#fh || this.#noted.has(id)) return Promise.resolve();
    this.#noted.add(id);
    this.#batch.push(id);
    this.#next ??= this.#drain();
    return this.#next;
  }

  async #drain(): Promise<void> {
    // Always one turn first, so note() has stored this promise before it is let go below; then
    // after the write under way, if any: this batch is written after it.
    do await this.#writing?.catch(() => undefined);
    while (this.#writing);
    this.#next = undefined;
    const ids = this.#batch.splice(0);
    const fh = this.#fh!;
    const write = (async () => {
      await fh.write(`${ids.join('\n')}\n`);
      if (this.#fsync) await fh.datasync();
    })();
    this.#writing = write;
    try {
      await write;
    } catch (err) {
      for (const id of ids) this.#noted.delete(id);
      throw err;
    } finally {
      if (this.#writing === write) this.#writing = undefined;
    }
  }

  /**
   * Starts a new change log (durably) and returns its number: a snapshot captured from now on
   * takes that number, and every change after its capture is noted in that log.
   */
  rotate(): Promise<number> {
    return this.#op(() => this.#rotate());
  }

  /** Runs a rotation or a write unless closed; close() waits for it. */
  #op<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error(`the spool at ${this.#root} is closed; no catalog snapshot written`));
    const p = fn();
    const settled = p.catch(() => undefined);
    this.#ops.add(settled);
    void settled.then(() => this.#ops.delete(settled));
    return p;
  }

  async #rotate(): Promise<number> {
    const seq = Math.max(this.#fhSeq, this.#seq ?? 0, ...(await this.#logs())) + 1;
    const fh = await open(join(this.#root, logName(seq)), 'a');
    if (this.#fsync) {
      await fh.datasync();
      await fsyncPath(this.#root);
    }
    if (this.#fh) this.#older.push(this.#fh);
    this.#fh = fh;
    this.#fhSeq = seq;
    this.#noted.clear();
    return seq;
  }

  /** Writes snapshot `seq` atomically (temp file, fsync, rename, folder fsync), then drops older logs. */
  write(seq: number, bytes: Buffer): Promise<void> {
    return this.#op(() => this.#write(seq, bytes));
  }

  async #write(seq: number, bytes: Buffer): Promise<void> {
    const tmp = join(this.#root, TMP_FILE);
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(bytes);
      if (this.#fsync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    if (this.#fsync) await fsyncPath(this.#root);
    this.#seq = seq;
    await this.#writing?.catch(() => undefined);
    for (const old of this.#older.splice(0)) await old.close().catch(() => undefined);
    for (const n of await this.#logs()) if (n < seq) await unlink(join(this.#root, logName(n))).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#ops);
    await this.#writing?.catch(() => undefined);
    for (const fh of [...this.#older.splice(0), ...(this.#fh ? [this.#fh] : [])]) await fh.close().catch(() => undefined);
    this.#fh = undefined;
  }
}
