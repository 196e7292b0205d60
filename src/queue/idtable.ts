// Queue id → row number for the catalog without a string or Map entry per message: an id (85 bits)
// is packed into three 32-bit numbers per row, found by an open-addressing table: ~20 bytes an id
// instead of ~75. Strings that are not queue ids (tests schedule "a", "b") use an ordinary Map.

const ALPHABET = '0123456789abcdefghijklmnopqrstuv';
const CODE = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) CODE[ALPHABET.charCodeAt(i)] = i;
const CHARS = Array.from(ALPHABET, (c) => c.charCodeAt(0));
const EMPTY = 0;

/** Packs a queue id into `out[0..2]`; false when `id` is not one. */
function pack(id: string, out: Int32Array): boolean {
  if (id.length !== 17) return false;
  let a = 0;
  let b = 0;
  let c = 0;
  for (let i = 0; i < 17; i++) {
    const ch = id.charCodeAt(i);
    const v = ch < 128 ? CODE[ch]! : -1;
    if (v < 0) return false;
    if (i < 6) a = (a << 5) | v;
    else if (i < 12) b = (b << 5) | v;
    else c = (c << 5) | v;
  }
  out[0] = a;
  out[1] = b;
  out[2] = c;
  return true;
}

function hash(a: number, b: number, c: number): number {
  let h = Math.imul(a ^ 0x2545f491, 0x9e3779b1);
  h = Math.imul(h ^ b ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ c ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

export class IdTable {
  // Per row: the packed id.
  #ka = new Int32Array(0);
  #kb = new Int32Array(0);
  #kc = new Int32Array(0);
  // Open addressing with linear probing: row + 1, or EMPTY.
  #table = new Int32Array(1024);
  #mask = 1023;
  #count = 0;
  readonly #other = new Map<string, number>();
  readonly #otherIds = new Map<number, string>();
  readonly #scratch = new Int32Array(3);

  get size(): number {
    return this.#count + this.#other.size;
  }

  get(id: string): number | undefined {
    const k = this.#scratch;
    if (!pack(id, k)) return this.#other.get(id);
    const i = this.#find(k[0]!, k[1]!, k[2]!);
    return i < 0 ? undefined : this.#table[i]! - 1;
  }

  /** Records that `id` lives in `row` (which must not hold another id). */
  set(id: string, row: number): void {
    const k = this.#scratch;
    if (!pack(id, k)) {
      this.#other.set(id, row);
      this.#otherIds.set(row, id);
      return;
    }
    if (row >= this.#ka.length) this.#growRows(row + 1);
    this.#ka[row] = k[0]!;
    this.#kb[row] = k[1]!;
    this.#kc[row] = k[2]!;
    if ((this.#count + 1) * 10 > this.#table.length * 7) this.#rehash(this.#table.length * 2);
    this.#insert(row);
    this.#count++;
  }

  /** Makes room for `rows` ids at once (a start that knows how many are coming rehashes once). */
  reserve(rows: number): void {
    if (rows > this.#ka.length) this.#growRows(rows);
    let cap = this.#table.length;
    while (rows * 10 > cap * 7) cap *= 2;
    if (cap !== this.#table.length) this.#rehash(cap);
  }

  /** Forgets the id of `row`. */
  deleteRow(row: number): void {
    const other = this.#otherIds.get(row);
    if (other !== undefined) {
      this.#otherIds.delete(row);
      this.#other.delete(other);
      return;
    }
    const i = this.#find(this.#ka[row]!, this.#kb[row]!, this.#kc[row]!);
    if (i < 0 || this.#table[i] !== row + 1) return;
    this.#removeAt(i);
    this.#count--;
  }

  /** The id of `row`. */
  idOf(row: number): string {
    const other = this.#otherIds.get(row);
    if (other !== undefined) return other;
    const a = this.#ka[row]!;
    const b = this.#kb[row]!;
    const c = this.#kc[row]!;
    const ch = (v: number, shift: number): number => CHARS[(v >>> shift) & 31]!;
    return String.fromCharCode(
      ch(a, 25), ch(a, 20), ch(a, 15), ch(a, 10), ch(a, 5), ch(a, 0),
      ch(b, 25), ch(b, 20), ch(b, 15), ch(b, 10), ch(b, 5), ch(b, 0),
      ch(c, 20), ch(c, 15), ch(c, 10), ch(c, 5), ch(c, 0),
    );
  }

  #find(a: number, b: number, c: number): number {
    const t = this.#table;
    for (let i = hash(a, b, c) & this.#mask; ; i = (i + 1) & this.#mask) {
      const v = t[i]!;
      if (v === EMPTY) return -1;
      const r = v - 1;
      if (this.#ka[r] === a && this.#kb[r] === b && this.#kc[r] === c) return i;
    }
  }

  #home(row: number): number {
    return hash(this.#ka[row]!, this.#kb[row]!, this.#kc[row]!) & this.#mask;
  }

  #insert(row: number): void {
    const t = this.#table;
    let i = this.#home(row);
    while (t[i] !== EMPTY) i = (i + 1) & this.#mask;
    t[i] = row + 1;
  }

  /** Backward-shift deletion: no tombstones, so lookups stay short after mass deletes. */
  #removeAt(start: number): void {
    const t = this.#table;
    const mask = this.#mask;
    let hole = start;
    for (let j = (hole + 1) & mask; t[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.#home(t[j]! - 1);
      // Move the entry at j into the hole unless its home lies cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        t[hole] = t[j]!;
        hole = j;
      }
    }
    t[hole] = EMPTY;
  }

  #rehash(capacity: number): void {
    const old = this.#table;
    this.#table = new Int32Array(capacity);
    this.#mask = capacity - 1;
    for (const v of old) if (v !== EMPTY) this.#insert(v - 1);
  }

  #growRows(min: number): void {
    let n = Math.max(1024, Math.ceil(this.#ka.length * 1.5));
    while (n < min) n = Math.ceil(n * 1.5);
    const grow = (a: Int32Array): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.#ka = grow(this.#ka);
    this.#kb = grow(this.#kb);
    this.#kc = grow(this.#kc);
  }
}
