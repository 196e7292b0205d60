// The bytes of messages just committed from memory, kept for their first delivery pass so it need
// not open, read and hash the file written milliseconds before. Only ever a shortcut: whatever is
// not here (a restart, an eviction, a spilled message) is read from the file. docs/decisions/0009.
import type { Envelope } from './envelope.ts';

/** Bytes held at most by default; past it new messages are read from their file. */
export const DEFAULT_FRESH_CACHE_BYTES = 32 * 1024 * 1024;
/**
 * An entry older than this may be dropped to make room: its first pass failed or never came (a
 * stopped queue), and it must not keep newer messages out for good.
 */
const STALE_MS = 60_000;

export interface FreshMessage {
  /** The envelope exactly as a reader of the file decodes it. */
  readonly envelope: Envelope;
  /** The message bytes exactly as written after the header (already hashed at commit). */
  readonly body: Buffer;
  readonly at: number;
}

export class FreshCache {
  readonly #limit: number;
  // Insertion order is commit order: the oldest entries come first.
  readonly #map = new Map<string, FreshMessage>();
  #bytes = 0;

  constructor(limitBytes: number) {
    this.#limit = limitBytes;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#map.size;
  }

  /**
   * Keeps a committed message unless that would pass the bound. The queue hands out the oldest
   * first, so under a backlog the entries already held are the next to be delivered: a new one is
   * refused rather than an old one evicted (only stale ones make room).
   */
  add(envelope: Envelope, body: Buffer, now = Date.now()): boolean {
    if (body.length > this.#limit) return false;
    this.delete(envelope.id);
    for (const [id, m] of this.#map) {
      if (this.#bytes + body.length <= this.#limit || now - m.at < STALE_MS) break;
      this.delete(id);
    }
    if (this.#bytes + body.length > this.#limit) return false;
    this.#map.set(envelope.id, { envelope, body, at: now });
    this.#bytes += body.length;
    return true;
  }

  get(id: string): FreshMessage | undefined {
    return this.#map.get(id);
  }

  delete(id: string): void {
    const m = this.#map.get(id);
    if (!m) return;
    this.#map.delete(id);
    this.#bytes -= m.body.length;
  }

  clear(): void {
    this.#map.clear();
    this.#bytes = 0;
  }
}
