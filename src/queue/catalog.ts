// The queue's memory of every message it knows, one row per id in typed-array columns: schedule time
// and flags (queue.ts), and what operator filters ask (sender, recipients, arrival, states, held),
// so a selection on a live server reads no file. Sizes: docs/decisions/0011-queue-delete-at-scale.md.
import { setImmediate as turn } from 'node:timers/promises';
import type { Envelope, RecipientState, RecipientStatus } from './envelope.ts';
import type { StateUpdate } from './format.ts';
import { filterParts, type AddressTest, type QueueFilter } from './filter.ts';
import { AddressStore, AddressTable, NO_DOMAIN, Strings } from './addresses.ts';
import { C_COUNT, C_LOGIN, C_RECEIVED, C_SENDER, DEFERRED, HEAD, LOGIN_NONE, MAILBOX_NONE, MAILBOX_SAME, PER_RECIPIENT, STATUS_CODE, STATUS_NAME } from './snapshot-layout.ts';
import { IdTable } from './idtable.ts';

/** Row flags (one byte a row). The first six are the schedule's (queue.ts). */
export const F_SCHEDULED = 1;
export const F_RECOVERED = 2;
export const F_FLUSH = 4;
export const F_IN_FLIGHT = 8;
/** An operator's command works on it: not scheduled until restored. */
export const F_SUSPENDED = 16;
/** Suspended with a due time kept in `due`, scheduled again on restore. */
export const F_PARKED = 32;
/** The row carries the message's facts (it is in queue/ or hold/). */
export const F_INDEXED = 64;
export const F_HELD = 128;

const isFinalCode = (c: number): boolean => c >= 2;
// An address is three numbers (addresses.ts); a mailbox column's length says "none" or "the same
// as the address" (the common cases) instead, with the snapshot's codes (MAILBOX_NONE, MAILBOX_SAME).
const A = 3;
/** Longest stretch of a selection before the event loop gets a turn. */
const SELECT_SLICE_MS = 4;

/** The recipients of a message with more than one (most have one, kept in the main columns). */
interface Multi {
  readonly address: Int32Array;
  readonly mailbox: Int32Array;
  readonly status: Uint8Array;
  /** Each recipient's `nextAttemptAt` (NaN: none), kept for the catalog snapshot. */
  readonly next: Float64Array;
}

/** What the catalog keeps of an envelope. */
export type IndexedEnvelope = Pick<Envelope, 'receivedAt' | 'mailFrom'> & { readonly client: { readonly login?: string | undefined } } & { readonly recipients: ReadonlyArray<{ readonly address: string; readonly mailbox?: string | undefined }> };

/** What the catalog snapshot keeps of one indexed message (snapshot.ts). */
export interface RowFacts {
  readonly held: boolean;
  readonly receivedAt: number;
  readonly mailFrom: string;
  /** The SMTP AUTH login, lower-cased, when there was one. */
  readonly login?: string | undefined;
  readonly recipients: ReadonlyArray<{ readonly address: string; readonly mailbox: string | undefined; readonly status: RecipientStatus; readonly next: number }>;
}

/** Loads catalog snapshot rows (snapshot-layout.ts) into the catalog's columns; `done` when the load is over. */
export interface SnapshotLoader {
  /** Keeps the facts of the message whose cells start at `at` in `slot`, as `index` would. */
  index(slot: number, at: number, held: boolean): void;
  done(): void;
}

/** A message chosen by a filter. */
export interface Selected {
  readonly id: string;
  readonly area: 'queue' | 'hold';
  /** The envelope sender, for the operator's log line. */
  readonly from: string;
}

/** What `summarize` counts (senders lower-cased, "<>" for bounces; domains of recipients to go). */
export interface CatalogSummary {
  messages: number;
  held: number;
  deferred: number;
  pending: number;
  /** Recipients not yet delivered or bounced. */
  toGo: number;
  readonly senders: Map<string, number>;
  /** Messages with a recipient to go in each domain. */
  readonly domains: Map<string, number>;
  /** Messages by submitting login ("" for none). */
  readonly logins: Map<string, number>;
}

/** What `counts` gives: `summarize`'s first figures and the oldest message. */
export interface CatalogCounts {
  readonly messages: number;
  readonly held: number;
  /** Not held, with a recipient waiting for a retry. */
  readonly deferred: number;
  readonly oldestReceivedAt: number | null;
  readonly oldestId?: string;
}

function grow<T extends Int32Array | Uint8Array | Float64Array>(a: T, rows: number, per = 1): T {
  const b = new (a.constructor as new (n: number) => T)(rows * per);
  b.set(a);
  return b;
}

export class Catalog {
  readonly #ids = new IdTable();
  readonly #addr = new AddressStore();
  /** Rows in use (also those with no flag yet). */
  #used = new Uint8Array(0);
  #high = 0;
  #free: number[] = [];
  #capacity = 0;
  /** Row flags (F_*). */
  flags = new Uint8Array(0);
  /** When a scheduled (or parked) row is due, ms since the epoch. */
  due = new Float64Array(0);
  #received = new Float64Array(0);
  #status = new Uint8Array(0);
  #next = new Float64Array(0);
  #sender = new Int32Array(0);
  #address = new Int32Array(0);
  #mailbox = new Int32Array(0);
  #multi: Array<Multi | undefined> = [];
  /** The submitting login, interned lower-cased (-1: none). */
  readonly #logins = new Strings();
  #login = new Int32Array(0);
  #indexed = 0;

  /** Rows (messages indexed, plus ids only scheduled). */
  get size(): number {
    return this.#ids.size;
  }

  /** Messages whose facts are kept. */
  get indexed(): number {
    return this.#indexed;
  }

  slot(id: string): number | undefined {
    return this.#ids.get(id);
  }

  id(slot: number): string {
    return this.#ids.idOf(slot);
  }

  /** The row of `id`, made (with no flags) if there is none. */
  open(id: string): number {
    let slot = this.#ids.get(id);
    if (slot !== undefined) return slot;
    slot = this.#free.pop() ?? this.#high++;
    if (slot >= this.#capacity) this.#growTo(slot + 1);
    this.#used[slot] = 1;
    this.flags[slot] = 0;
    this.#ids.set(id, slot);
    return slot;
  }

  /** Makes room for `rows` rows at once (a start from a snapshot knows how many are coming). */
  reserve(rows: number): void {
    if (rows > this.#capacity) this.#growTo(rows);
    this.#ids.reserve(rows);
  }

  /** Lets the row go once nothing holds it (no flag left). */
  settle(slot: number): void {
    if (this.flags[slot] !== 0 || this.#used[slot] !== 1) return;
    this.#used[slot] = 0;
    this.#ids.deleteRow(slot);
    this.#free.push(slot);
  }

  /** Keeps (or replaces) the facts of a message in queue/ (`held` false) or hold/. */
  index(slot: number, env: IndexedEnvelope, states: readonly RecipientState[], held: boolean): void {
    if (this.flags[slot]! & F_INDEXED) this.#dropFacts(slot);
    else this.#indexed++;
    const store = this.#addr;
    store.put(env.mailFrom, this.#sender, slot * A);
    this.#received[slot] = env.receivedAt;
    this.#login[slot] = env.client.login ? this.#logins.intern(env.client.login.toLowerCase()) : -1;
    const code = (i: number): number => STATUS_CODE[states[i]?.status ?? 'pending'];
    const n = env.recipients.length;
    if (n === 1) {
      const r = env.recipients[0]!;
      store.put(r.address, this.#address, slot * A);
      this.#putMailbox(r.address, r.mailbox, this.#mailbox, slot * A);
      this.#status[slot] = code(0);
      this.#next[slot] = states[0]?.nextAttemptAt ?? NaN;
    } else {
      const m: Multi = { address: new Int32Array(n * A), mailbox: new Int32Array(n * A), status: new Uint8Array(n), next: new Float64Array(n) };
      env.recipients.forEach((r, i) => {
        store.put(r.address, m.address, i * A);
        this.#putMailbox(r.address, r.mailbox, m.mailbox, i * A);
        m.status[i] = code(i);
        m.next[i] = states[i]?.nextAttemptAt ?? NaN;
      });
      this.#multi[slot] = m;
    }
    this.flags[slot] = (this.flags[slot]! & ~F_HELD) | F_INDEXED | (held ? F_HELD : 0);
  }

  /**
   * A loader of rows straight from a catalog snapshot's cells and string table: each string is
   * split and interned once however many messages use it, and no envelope or state object is made
   * per message (a start from the snapshot of 400,000: decision 0018).
   */
  snapshotLoader(cells: Float64Array, strings: readonly string[]): SnapshotLoader {
    const table = new AddressTable(strings, this.#addr.domains);
    // Login numbers per string, each held once by the loader (as the table holds its domains).
    const logins = new Int32Array(strings.length).fill(-1);
    const held: number[] = [];
    const loginOf = (i: number): number => {
      let l = logins[i]!;
      if (l < 0) {
        l = this.#logins.intern(strings[i]!.toLowerCase());
        held.push(l);
        logins[i] = l;
      }
      this.#logins.ref(l);
      return l;
    };
    return {
      index: (slot, at, held) => this.#indexCells(slot, cells, at, table, loginOf, held),
      done: () => {
        table.release();
        for (const l of held.splice(0)) this.#logins.release(l);
      },
    };
  }

  #indexCells(slot: number, c: Float64Array, at: number, table: AddressTable, loginOf: (i: number) => number, held: boolean): void {
    if (this.flags[slot]! & F_INDEXED) this.#dropFacts(slot);
    else this.#indexed++;
    const store = this.#addr;
    store.putFrom(table, c[at + C_SENDER]!, this.#sender, slot * A);
    this.#received[slot] = c[at + C_RECEIVED]!;
    const login = c[at + C_LOGIN]!;
    this.#login[slot] = login === LOGIN_NONE ? -1 : loginOf(login);
    const n = c[at + C_COUNT]!;
    const p = at + HEAD;
    if (n === 1) {
      store.putFrom(table, c[p]!, this.#address, slot * A);
      this.#mailboxCell(table, c[p + 1]!, this.#mailbox, slot * A);
      this.#status[slot] = c[p + 2]!;
      this.#next[slot] = c[p + 3]!;
    } else {
      const m: Multi = { address: new Int32Array(n * A), mailbox: new Int32Array(n * A), status: new Uint8Array(n), next: new Float64Array(n) };
      for (let i = 0, q = p; i < n; i++, q += PER_RECIPIENT) {
        store.putFrom(table, c[q]!, m.address, i * A);
        this.#mailboxCell(table, c[q + 1]!, m.mailbox, i * A);
        m.status[i] = c[q + 2]!;
        m.next[i] = c[q + 3]!;
      }
      this.#multi[slot] = m;
    }
    this.flags[slot] = (this.flags[slot]! & ~F_HELD) | F_INDEXED | (held ? F_HELD : 0);
  }

  #mailboxCell(table: AddressTable, cell: number, col: Int32Array, at: number): void {
    if (cell === MAILBOX_NONE || cell === MAILBOX_SAME) {
      col[at] = 0;
      col[at + 1] = cell;
      col[at + 2] = NO_DOMAIN;
    } else {
      this.#addr.putFrom(table, cell, col, at);
    }
  }

  /** Forgets a message's facts (it left queue/ and hold/); the row stays while the schedule holds it. */
  unindex(slot: number): void {
    if (!(this.flags[slot]! & F_INDEXED)) return;
    this.#dropFacts(slot);
    this.#indexed--;
    this.flags[slot] = this.flags[slot]! & ~(F_INDEXED | F_HELD);
    if (this.#addr.wasteful) this.#addr.compact((visit) => this.#eachAddress(visit));
  }

  isIndexed(slot: number): boolean {
    return (this.flags[slot]! & F_INDEXED) !== 0;
  }

  isHeld(slot: number): boolean {
    return (this.flags[slot]! & F_HELD) !== 0;
  }

  setHeld(slot: number, held: boolean): void {
    if (!this.isIndexed(slot)) return;
    this.flags[slot] = held ? this.flags[slot]! | F_HELD : this.flags[slot]! & ~F_HELD;
  }

  /** Applies a state record as replay does (format.ts decodeTail): a final state never changes again. */
  applyStates(slot: number, updates: readonly StateUpdate[]): void {
    if (!this.isIndexed(slot)) return;
    const m = this.#multi[slot];
    for (const u of updates) {
      const c = STATUS_CODE[u.state.status];
      const next = u.state.nextAttemptAt ?? NaN;
      if (m) {
        if (u.index < m.status.length && !isFinalCode(m.status[u.index]!)) {
          m.status[u.index] = c;
          m.next[u.index] = next;
        }
      } else if (u.index === 0 && !isFinalCode(this.#status[slot]!)) {
        this.#status[slot] = c;
        this.#next[slot] = next;
      }
    }
  }

  /** An indexed row's facts as a replay of its file gives them, for the catalog snapshot. */
  facts(slot: number): RowFacts | undefined {
    if (!this.isIndexed(slot)) return undefined;
    const store = this.#addr;
    const mailbox = (col: Int32Array, at: number, address: string): string | undefined => {
      const kind = col[at + 1]!;
      if (kind === MAILBOX_NONE) return undefined;
      return kind === MAILBOX_SAME ? address : store.get(col, at);
    };
    const m = this.#multi[slot];
    const recipients = [];
    if (m) {
      for (let i = 0; i < m.status.length; i++) {
        const address = store.get(m.address, i * A);
        recipients.push({ address, mailbox: mailbox(m.mailbox, i * A, address), status: STATUS_NAME[m.status[i]!]!, next: m.next[i]! });
      }
    } else {
      const address = store.get(this.#address, slot * A);
      recipients.push({ address, mailbox: mailbox(this.#mailbox, slot * A, address), status: STATUS_NAME[this.#status[slot]!]!, next: this.#next[slot]! });
    }
    const login = this.#login[slot]!;
    return { held: this.isHeld(slot), receivedAt: this.#received[slot]!, mailFrom: store.get(this.#sender, slot * A), login: login < 0 ? undefined : this.#logins.get(login), recipients };
  }

  /**
   * The indexed messages in `areas` that match `filter`, as `queue list` would find them on disk:
   * the same address tests, on the same addresses (domain tests once per domain). Gives the event
   * loop a turn every few milliseconds; a message that arrives meanwhile may or may not be chosen.
   */
  async select(filter: QueueFilter, areas: readonly string[], now: number = Date.now()): Promise<Selected[]> {
    const out: Selected[] = [];
    await this.#scan(filter, areas, now, (slot) => out.push(this.#selected(slot)));
    return out;
  }

  /**
   * Counts of the messages `select` would choose, as `queue list --summary` makes them from the
   * files: by state, recipients to go, and by sender and by recipient domain (of the recipients
   * still to go), from memory.
   */
  async summarize(filter: QueueFilter, areas: readonly string[], now: number = Date.now()): Promise<CatalogSummary> {
    const sum: CatalogSummary = { messages: 0, held: 0, deferred: 0, pending: 0, toGo: 0, senders: new Map(), domains: new Map(), logins: new Map() };
    const byLogin = new Map<number, number>();
    const byDomain = new Map<number, number>();
    const noDomain = new Map<string, number>();
    const store = this.#addr;
    const countDomain = (address: Int32Array, mailbox: Int32Array, at: number, seen: Set<number | string>): void => {
      const col = mailbox[at + 1]! >= 0 ? mailbox : address;
      const d = col[at + 2]!;
      const key = d === NO_DOMAIN ? store.get(col, at).toLowerCase() : d;
      if (seen.has(key)) return;
      seen.add(key);
      if (typeof key === 'string') noDomain.set(key, (noDomain.get(key) ?? 0) + 1);
      else byDomain.set(key, (byDomain.get(key) ?? 0) + 1);
    };
    await this.#scan(filter, areas, now, (slot, held) => {
      sum.messages++;
      if (held) sum.held++;
      else if (this.#anyDeferred(slot)) sum.deferred++;
      else sum.pending++;
      const from = this.#senderOf(slot);
      const key = from === '' ? '<>' : from.toLowerCase();
      sum.senders.set(key, (sum.senders.get(key) ?? 0) + 1);
      byLogin.set(this.#login[slot]!, (byLogin.get(this.#login[slot]!) ?? 0) + 1);
      const seen = new Set<number | string>();
      const m = this.#multi[slot];
      if (!m) {
        if (!isFinalCode(this.#status[slot]!)) {
          sum.toGo++;
          countDomain(this.#address, this.#mailbox, slot * A, seen);
        }
        return;
      }
      for (let i = 0; i < m.status.length; i++) {
        if (isFinalCode(m.status[i]!)) continue;
        sum.toGo++;
        countDomain(m.address, m.mailbox, i * A, seen);
      }
    });
    for (const [d, n] of byDomain) {
      const name = store.domains.get(d).toLowerCase();
      sum.domains.set(name, (sum.domains.get(name) ?? 0) + n);
    }
    for (const [name, n] of noDomain) sum.domains.set(name, (sum.domains.get(name) ?? 0) + n);
    for (const [l, n] of byLogin) sum.logins.set(l < 0 ? '' : this.#logins.get(l), n);
    return sum;
  }

  /**
   * The queue's figures as `summarize` counts them (every message, held, deferred of the rest) and
   * the oldest, in one pass over the row flags without its lists: cheap enough for each dashboard
   * refresh, scrape and queue-growth sample at 400,000 messages.
   */
  counts(): CatalogCounts {
    let messages = 0;
    let held = 0;
    let deferred = 0;
    let oldest = -1;
    for (let slot = 0; slot < this.#high; slot++) {
      const f = this.flags[slot]!;
      if (!(f & F_INDEXED)) continue;
      messages++;
      if (f & F_HELD) held++;
      else if (this.#anyDeferred(slot)) deferred++;
      if (oldest < 0 || this.#received[slot]! < this.#received[oldest]!) oldest = slot;
    }
    return { messages, held, deferred, oldestReceivedAt: oldest < 0 ? null : this.#received[oldest]!, ...(oldest < 0 ? {} : { oldestId: this.#ids.idOf(oldest) }) };
  }

  /** Calls `visit` for every indexed row in `areas` that matches `filter` (select's loop). */
  async #scan(filter: QueueFilter, areas: readonly string[], now: number, visit: (slot: number, held: boolean) => void): Promise<void> {
    const p = filterParts(filter, now);
    const wantQueue = areas.includes('queue');
    const wantHold = areas.includes('hold');
    const domains = this.#addr.domains;
    // Domain numbers are not reused while pinned, so an answer kept per number stays right.
    domains.pin();
    this.#logins.pin();
    try {
      const sender = this.#tester(p.sender);
      const recipient = this.#tester(p.recipient);
      const domain = this.#tester(p.domain);
      const before = p.receivedBefore;
      const state = p.state;
      // A login nobody used matches no message; "" asks for mail without a login.
      const login = p.login === undefined ? undefined : p.login === '' ? -1 : (this.#logins.find(p.login) ?? -2);
      let sliceStart = performance.now();
      for (let slot = 0; slot < this.#high; slot++) {
        if ((slot & 511) === 511 && performance.now() - sliceStart > SELECT_SLICE_MS) {
          await turn();
          sliceStart = performance.now();
        }
        const f = this.flags[slot]!;
        if (!(f & F_INDEXED)) continue;
        const held = (f & F_HELD) !== 0;
        if (held ? !wantHold : !wantQueue) continue;
        if (before !== undefined && !(this.#received[slot]! < before)) continue;
        if (login !== undefined && this.#login[slot] !== login) continue;
        if (sender && !sender(this.#sender, slot * A)) continue;
        if (recipient && !this.#anyRecipient(slot, recipient)) continue;
        if (domain && !this.#anyRecipient(slot, domain)) continue;
        if (state !== undefined && state !== (held ? 'held' : this.#anyDeferred(slot) ? 'deferred' : 'pending')) continue;
        visit(slot, held);
      }
    } finally {
      domains.unpin();
      this.#logins.unpin();
    }
  }

  /** What `select` would say about one indexed row. */
  describe(slot: number): Selected | undefined {
    if (!this.isIndexed(slot)) return undefined;
    return this.#selected(slot);
  }

  /** Calls `fn` for every indexed row, giving the event loop a turn every few milliseconds. */
  async eachIndexed(fn: (slot: number, id: string) => void): Promise<void> {
    let sliceStart = performance.now();
    for (let slot = 0; slot < this.#high; slot++) {
      if ((slot & 511) === 511 && performance.now() - sliceStart > SELECT_SLICE_MS) {
        await turn();
        sliceStart = performance.now();
      }
      if (this.flags[slot]! & F_INDEXED) fn(slot, this.#ids.idOf(slot));
    }
  }

  /** Calls `fn` for every row with any of `mask`'s flags. */
  forEach(mask: number, fn: (slot: number) => void): void {
    for (let slot = 0; slot < this.#high; slot++) if (this.flags[slot]! & mask) fn(slot);
  }

  #selected(slot: number): Selected {
    return { id: this.#ids.idOf(slot), area: this.isHeld(slot) ? 'hold' : 'queue', from: this.#senderOf(slot) };
  }

  // The last sender decoded: a selection of one spammer's 300,000 messages decodes it once.
  #lastSender = { slot: -1, from: '' };

  #senderOf(slot: number): string {
    const last = this.#lastSender;
    if (last.slot >= 0 && last.slot < this.#high && this.flags[last.slot]! & F_INDEXED && this.#addr.same(this.#sender, last.slot * A, this.#sender, slot * A)) return last.from;
    const from = this.#addr.get(this.#sender, slot * A);
    this.#lastSender = { slot, from };
    return from;
  }

  /**
   * An address test over stored addresses: domain tests once per domain, exact addresses by their
   * domain (once per domain) and then their local part's bytes; anything else on the address.
   */
  #tester(test: AddressTest | undefined): ((col: Int32Array, at: number) => boolean) | undefined {
    if (!test) return undefined;
    const store = this.#addr;
    const { byDomain, exact } = test;
    const domainTest = byDomain ?? (exact?.domain !== undefined ? (d: string) => d.toLowerCase() === exact.domain : undefined);
    const memo = new Uint8Array(store.domains.capacity);
    const domainOk = (d: number): boolean => {
      // A domain first seen during this selection: not remembered.
      if (d >= memo.length) return domainTest!(store.domains.get(d));
      let m = memo[d]!;
      if (m === 0) {
        m = domainTest!(store.domains.get(d)) ? 1 : 2;
        memo[d] = m;
      }
      return m === 1;
    };
    if (exact) {
      const ascii = /^[\x00-\x7f]*$/.test(exact.local);
      return (col, at) => {
        const d = col[at + 2]!;
        if ((d === NO_DOMAIN) !== (exact.domain === undefined)) return false;
        if (d !== NO_DOMAIN && !domainOk(d)) return false;
        return store.localIs(col, at, exact.local, ascii);
      };
    }
    if (!domainTest) return (col, at) => test(store.get(col, at));
    return (col, at) => {
      const d = col[at + 2]!;
      return d === NO_DOMAIN ? test(store.get(col, at)) : domainOk(d);
    };
  }

  #anyRecipient(slot: number, test: (col: Int32Array, at: number) => boolean): boolean {
    const m = this.#multi[slot];
    if (!m) return this.#oneRecipient(this.#address, this.#mailbox, slot * A, test);
    for (let i = 0; i < m.status.length; i++) if (this.#oneRecipient(m.address, m.mailbox, i * A, test)) return true;
    return false;
  }

  /** The recipient's address, or its mailbox when it has one of its own. */
  #oneRecipient(address: Int32Array, mailbox: Int32Array, at: number, test: (col: Int32Array, at: number) => boolean): boolean {
    if (test(address, at)) return true;
    return mailbox[at + 1]! >= 0 && test(mailbox, at);
  }

  #anyDeferred(slot: number): boolean {
    const m = this.#multi[slot];
    if (!m) return this.#status[slot] === DEFERRED;
    return m.status.includes(DEFERRED);
  }

  #putMailbox(address: string, mailbox: string | undefined, col: Int32Array, at: number): void {
    if (mailbox === undefined || mailbox === address) {
      col[at] = 0;
      col[at + 1] = mailbox === undefined ? MAILBOX_NONE : MAILBOX_SAME;
      col[at + 2] = NO_DOMAIN;
    } else {
      this.#addr.put(mailbox, col, at);
    }
  }

  #dropFacts(slot: number): void {
    if (this.#login[slot]! >= 0) this.#logins.release(this.#login[slot]!);
    this.#login[slot] = -1;
    const store = this.#addr;
    store.drop(this.#sender, slot * A);
    const m = this.#multi[slot];
    if (m) {
      for (let i = 0; i < m.status.length; i++) {
        store.drop(m.address, i * A);
        if (m.mailbox[i * A + 1]! >= 0) store.drop(m.mailbox, i * A);
      }
      this.#multi[slot] = undefined;
    } else {
      store.drop(this.#address, slot * A);
      if (this.#mailbox[slot * A + 1]! >= 0) store.drop(this.#mailbox, slot * A);
    }
  }

  /** Every stored address (for compaction of the address store). */
  #eachAddress(visit: (col: Int32Array, at: number) => void): void {
    for (let slot = 0; slot < this.#high; slot++) {
      if (!(this.flags[slot]! & F_INDEXED)) continue;
      visit(this.#sender, slot * A);
      const m = this.#multi[slot];
      if (m) {
        for (let i = 0; i < m.status.length; i++) {
          visit(m.address, i * A);
          if (m.mailbox[i * A + 1]! >= 0) visit(m.mailbox, i * A);
        }
      } else {
        visit(this.#address, slot * A);
        if (this.#mailbox[slot * A + 1]! >= 0) visit(this.#mailbox, slot * A);
      }
    }
  }

  /** Grows every column by half (typed arrays cannot grow in place). */
  #growTo(min: number): void {
    let n = Math.max(1024, Math.ceil(this.#capacity * 1.5));
    while (n < min) n = Math.ceil(n * 1.5);
    this.#capacity = n;
    this.#used = grow(this.#used, n);
    this.flags = grow(this.flags, n);
    this.due = grow(this.due, n);
    this.#received = grow(this.#received, n);
    this.#login = grow(this.#login, n);
    this.#status = grow(this.#status, n);
    this.#next = grow(this.#next, n);
    this.#sender = grow(this.#sender, n, A);
    this.#address = grow(this.#address, n, A);
    this.#mailbox = grow(this.#mailbox, n, A);
    while (this.#multi.length < n) this.#multi.push(undefined);
  }
}
