// The unread-input queue of one SMTP connection: collects socket chunks, lets the state machine
// pull lines or raw bytes at its own pace, and pauses the socket when too much is buffered so a
// pipelining (or hostile) client cannot grow our memory without bound.
import type { Duplex } from 'node:stream';

const EMPTY = Buffer.alloc(0);

export class InputQueue {
  private chunks: Buffer[] = [];
  private size = 0;
  private eof = false;
  private paused = false;
  private waiter: (() => void) | undefined;
  private socket: Duplex | undefined;
  private readonly lowWater: number;

  constructor(private readonly highWater: number) {
    this.lowWater = Math.floor(highWater / 2);
  }

  attach(socket: Duplex): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    if (!this.paused) socket.resume();
  }

  /** Stops listening to the current socket (before it is wrapped in TLS). Leaves it paused. */
  detach(): void {
    const s = this.socket;
    if (!s) return;
    s.pause();
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onEnd);
    this.socket = undefined;
    this.paused = false;
  }

  private readonly onData = (chunk: Buffer | string): void => {
    if (this.eof) return;
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    this.chunks.push(b);
    this.size += b.length;
    if (this.size >= this.highWater && !this.paused) {
      this.paused = true;
      this.socket?.pause();
    }
    this.wake();
  };

  private readonly onEnd = (): void => {
    this.eof = true;
    this.wake();
  };

  /** Bytes buffered and not yet consumed. */
  get length(): number {
    return this.size;
  }

  /** The peer finished sending (or the connection is gone). Buffered bytes may remain. */
  get ended(): boolean {
    return this.eof;
  }

  /** All buffered bytes as one Buffer (concatenated lazily, at most once per arrival). */
  peek(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0] ?? EMPTY;
  }

  consume(n: number): void {
    if (n <= 0) return;
    const head = this.peek();
    if (n >= head.length) {
      this.chunks = [];
      this.size = 0;
    } else {
      this.chunks[0] = head.subarray(n);
      this.size -= n;
    }
    if (this.paused && this.size <= this.lowWater) {
      this.paused = false;
      this.socket?.resume();
    }
  }

  /** Throws away everything buffered; returns how many bytes that was. */
  discard(): number {
    const n = this.size;
    this.consume(n);
    return n;
  }

  /** Resolves when more bytes arrive, the input ends, or `wake()` is called. */
  wait(): Promise<void> {
    if (this.eof) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Wakes a pending `wait()` (used on shutdown requests). */
  wake(): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w();
    }
  }

  /** Ends input for good: drops what is buffered and ignores anything that still arrives. */
  terminate(): void {
    this.chunks = [];
    this.size = 0;
    this.eof = true;
    this.wake();
  }
}
