// A file by its numeric descriptor, with the part of fs.promises' FileHandle the per-message write
// paths use (writev, sync, close). A FileHandle is a JS object with a finaliser per open and a
// promise chain per close; on the spool's and the Maildir's path, two files per message, that was
// ~7 % of the main thread's time at 4 KB × 50 (bench/smtp profile). Callback fs calls on a number skip it.
import { close, fsync, open, writev } from 'node:fs';

/** What `writeAll` needs of a file: a FileHandle or a RawFile. */
export interface VectorWritable {
  writev(buffers: readonly NodeJS.ArrayBufferView[], position: number): Promise<{ bytesWritten: number }>;
}

export class RawFile implements VectorWritable {
  #fd: number | undefined;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Opens `path` (flags as fs.open: 'r', 'w', 'wx', …). */
  static open(path: string, flags: string, mode?: number): Promise<RawFile> {
    return new Promise((resolve, reject) => {
      open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(new RawFile(fd))));
    });
  }

  writev(buffers: readonly NodeJS.ArrayBufferView[], position: number): Promise<{ bytesWritten: number }> {
    const fd = this.#open();
    return new Promise((resolve, reject) => {
      writev(fd, buffers, position, (err, bytesWritten) => (err ? reject(err) : resolve({ bytesWritten })));
    });
  }

  /** fsync(2): the file's data and metadata (for a folder: its entries) are on disk. */
  sync(): Promise<void> {
    const fd = this.#open();
    return new Promise((resolve, reject) => {
      fsync(fd, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Closes the descriptor; a second call does nothing (the number may already be reused). */
  close(): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) return Promise.resolve();
    this.#fd = undefined;
    return new Promise((resolve, reject) => {
      close(fd, (err) => (err ? reject(err) : resolve()));
    });
  }

  #open(): number {
    if (this.#fd === undefined) throw new Error('file already closed');
    return this.#fd;
  }
}
