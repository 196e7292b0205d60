// An append-only journal file of the spool (deleted.log, held.log): appends and rewrites run one
// after another on one descriptor, so a truncation or a later batch never overtakes a write.
import type { FileHandle } from 'node:fs/promises';

export class AppendFile {
  readonly path: string;
  protected readonly fh: FileHandle;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  protected constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.fh = fh;
  }

  /** Writes all of `data` at the end (O_APPEND), looping over short writes. */
  protected async writeAll(data: Buffer): Promise<void> {
    for (let off = 0; off < data.length; ) {
      const { bytesWritten } = await this.fh.write(data, off, data.length - off);
      off += bytesWritten;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#tail.catch(() => undefined);
    await this.fh.close();
  }

  protected serial<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error(`journal ${this.path} is closed`));
    const p = this.#tail.then(fn);
    this.#tail = p.catch(() => undefined);
    return p;
  }
}
