// Addresses for the queue's catalog, stored compactly: each distinct domain once, counted; each local
// part as bytes in one growing buffer. An address is three numbers (offset, length, domain) in its
// owner's column: 400,000 distinct addresses cost a few MB instead of ~45 MB of strings in a Map.

export const NO_DOMAIN = -1;
/** Length flag: the bytes are UTF-16LE (a local part that is not well-formed Unicode round-trips only so). */
const UTF16 = 0x40000000;
const SURROGATE = /[\ud800-\udfff]/;

/** Strings kept once however often they are used, and let go when no longer used. */
export class Strings {
  readonly #ids = new Map<string, number>();
  #values: Array<string | undefined> = [];
  #refs = new Int32Array(256);
  #free: number[] = [];
  // While pinned (a selection is under way across event-loop turns), freed numbers are not
  // reused, so an answer remembered per number stays right.
  #pins = 0;
  #later: number[] = [];

  get capacity(): number {
    return this.#values.length;
  }

  intern(s: string): number {
    let i = this.#ids.get(s);
    if (i === undefined) {
      i = this.#free.pop() ?? this.#values.length;
      if (i === this.#values.length) this.#values.push(s);
      else this.#values[i] = s;
      if (i >= this.#refs.length) {
        const r = new Int32Array(Math.max(this.#refs.length * 2, i + 1));
        r.set(this.#refs);
        this.#refs = r;
      }
      this.#refs[i] = 0;
      this.#ids.set(s, i);
    }
    this.#refs[i]!++;
    return i;
  }

  /** One more use of the kept string number `i` (a number `intern` gave and not yet released). */
  ref(i: number): void {
    this.#refs[i]!++;
  }

  /** The number of `s` while it is kept; undefined when it is not. */
  find(s: string): number | undefined {
    return this.#ids.get(s);
  }

  release(i: number): void {
    if (--this.#refs[i]! > 0) return;
    this.#ids.delete(this.#values[i]!);
    this.#values[i] = undefined;
    (this.#pins > 0 ? this.#later : this.#free).push(i);
  }

  get(i: number): string {
    return this.#values[i]!;
  }

  pin(): void {
    this.#pins++;
  }

  unpin(): void {
    if (--this.#pins > 0) return;
    for (const i of this.#later) this.#free.push(i);
    this.#later = [];
  }
}

const UNPREPARED = -2;

/**
 * A table of strings (a catalog snapshot's) split into domain and local bytes once each, so that
 * storing one of them for the 300,000th time copies bytes and counts a use, without parsing,
 * encoding or a Map lookup. It holds one use of every domain it prepared until `release`, so a
 * domain number it remembers is never let go and given to another domain meanwhile.
 */
export class AddressTable {
  readonly domain: Int32Array;
  readonly offset: Int32Array;
  readonly length: Int32Array;
  bytes = Buffer.alloc(4096);
  #used = 0;
  readonly #held: number[] = [];
  constructor(
    readonly strings: readonly string[],
    readonly domains: Strings,
  ) {
    this.domain = new Int32Array(strings.length).fill(UNPREPARED);
    this.offset = new Int32Array(strings.length);
    this.length = new Int32Array(strings.length);
  }

  /** Splits string `i` (as AddressStore.put does) and returns its domain number. */
  prepare(i: number): number {
    const address = this.strings[i]!;
    const at = address.lastIndexOf('@');
    const local = at < 0 ? address : address.slice(0, at);
    const d = at < 0 ? NO_DOMAIN : this.domains.intern(address.slice(at + 1));
    if (d !== NO_DOMAIN) this.#held.push(d);
    const utf16 = SURROGATE.test(local);
    const n = Buffer.byteLength(local, utf16 ? 'utf16le' : 'utf8');
    if (this.#used + n > this.bytes.length) {
      const next = Buffer.alloc(Math.max(this.bytes.length * 2, this.#used + n));
      this.bytes.copy(next, 0, 0, this.#used);
      this.bytes = next;
    }
    this.bytes.write(local, this.#used, n, utf16 ? 'utf16le' : 'utf8');
    this.offset[i] = this.#used;
    this.length[i] = utf16 ? n | UTF16 : n;
    this.#used += n;
    this.domain[i] = d;
    return d;
  }

  /** Lets go of the domains held (the load is over). */
  release(): void {
    for (const d of this.#held.splice(0)) this.domains.release(d);
  }
}

export class AddressStore {
  #buf = Buffer.alloc(64 * 1024);
  #used = 0;
  #garbage = 0;
  readonly domains = new Strings();

  /** Bytes of local parts held (live and not yet compacted away). */
  get bytes(): number {
    return this.#used;
  }

  /** True when more than half the buffer is left by addresses no longer used. */
  get wasteful(): boolean {
    return this.#garbage > 256 * 1024 && this.#garbage * 2 > this.#used;
  }

  /** Stores `address` as col[at] (offset), col[at + 1] (length) and col[at + 2] (domain). */
  put(address: string, col: Int32Array, at: number): void {
    const i = address.lastIndexOf('@');
    const local = i < 0 ? address : address.slice(0, i);
    col[at + 2] = i < 0 ? NO_DOMAIN : this.domains.intern(address.slice(i + 1));
    const utf16 = SURROGATE.test(local);
    const n = Buffer.byteLength(local, utf16 ? 'utf16le' : 'utf8');
    this.#reserve(n);
    this.#buf.write(local, this.#used, n, utf16 ? 'utf16le' : 'utf8');
    col[at] = this.#used;
    col[at + 1] = utf16 ? n | UTF16 : n;
    this.#used += n;
  }

  /** Stores string `i` of `table` (made with this store's domains) as `put` would store it. */
  putFrom(table: AddressTable, i: number, col: Int32Array, at: number): void {
    let d = table.domain[i]!;
    if (d === UNPREPARED) d = table.prepare(i);
    if (d !== NO_DOMAIN) this.domains.ref(d);
    const len = table.length[i]!;
    const n = len & ~UTF16;
    this.#reserve(n);
    const src = table.bytes;
    const dst = this.#buf;
    const from = table.offset[i]!;
    const to = this.#used;
    // Local parts are short: a loop beats a native copy's call.
    if (n <= 32) for (let k = 0; k < n; k++) dst[to + k] = src[from + k]!;
    else src.copy(dst, to, from, from + n);
    col[at] = to;
    col[at + 1] = len;
    col[at + 2] = d;
    this.#used += n;
  }

  /** Lets go of the address at col[at]. */
  drop(col: Int32Array, at: number): void {
    this.#garbage += col[at + 1]! & ~UTF16;
    const d = col[at + 2]!;
    if (d !== NO_DOMAIN) this.domains.release(d);
  }

  /** True when col1[at1] and col2[at2] hold the same address (same domain, same local bytes). */
  same(col1: Int32Array, at1: number, col2: Int32Array, at2: number): boolean {
    const len = col1[at1 + 1]!;
    if (len !== col2[at2 + 1] || col1[at1 + 2] !== col2[at2 + 2]) return false;
    const n = len & ~UTF16;
    return this.#buf.compare(this.#buf, col2[at2], col2[at2]! + n, col1[at1], col1[at1]! + n) === 0;
  }

  /** The address at col[at], as it was given. */
  get(col: Int32Array, at: number): string {
    const off = col[at]!;
    const len = col[at + 1]!;
    const local = this.#buf.toString(len & UTF16 ? 'utf16le' : 'utf8', off, off + (len & ~UTF16));
    const d = col[at + 2]!;
    return d === NO_DOMAIN ? local : `${local}@${this.domains.get(d)}`;
  }

  /**
   * True when the lower-cased local part at col[at] is `lowered` (itself lower case): byte by
   * byte for ASCII, the common case, else by decoding it.
   */
  localIs(col: Int32Array, at: number, lowered: string, loweredAscii: boolean): boolean {
    const off = col[at]!;
    const len = col[at + 1]!;
    if (!(len & UTF16)) {
      const buf = this.#buf;
      let ascii = true;
      for (let i = off; i < off + len; i++) {
        if (buf[i]! >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        // ASCII lower-cases to ASCII, so a non-ASCII `lowered` cannot match.
        if (!loweredAscii || len !== lowered.length) return false;
        for (let i = 0; i < len; i++) {
          let b = buf[off + i]!;
          if (b >= 0x41 && b <= 0x5a) b += 0x20;
          if (b !== lowered.charCodeAt(i)) return false;
        }
        return true;
      }
    }
    return this.#buf.toString(len & UTF16 ? 'utf16le' : 'utf8', off, off + (len & ~UTF16)).toLowerCase() === lowered;
  }

  /**
   * Moves every live local part into a new buffer. `each` calls its argument once for every
   * address still stored (its column and index).
   */
  compact(each: (visit: (col: Int32Array, at: number) => void) => void): void {
    const live = this.#used - this.#garbage;
    const next = Buffer.alloc(Math.max(64 * 1024, Math.ceil(live * 1.25)));
    let pos = 0;
    each((col, at) => {
      const off = col[at]!;
      const n = col[at + 1]! & ~UTF16;
      this.#buf.copy(next, pos, off, off + n);
      col[at] = pos;
      pos += n;
    });
    this.#buf = next;
    this.#used = pos;
    this.#garbage = 0;
  }

  #reserve(n: number): void {
    if (this.#used + n <= this.#buf.length) return;
    const next = Buffer.alloc(Math.max(Math.ceil(this.#buf.length * 1.5), this.#used + n));
    this.#buf.copy(next, 0, 0, this.#used);
    this.#buf = next;
  }
}
