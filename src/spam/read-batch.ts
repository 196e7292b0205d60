// Coalesces hash-field reads: every read of one store hash asked for during a turn of the event
// loop goes to the store as one hmget, each field once. Messages whose readings come back from the
// worker threads together (the usual case under load) then cost one read per bucket between them,
// not one each: a read has a fixed cost (two SQLite statements, or a Redis round trip).
import type { Store } from '../store/store.ts';

interface Waiter {
  /** Where each field the caller asked for sits in the combined read. */
  readonly positions: number[];
  readonly resolve: (values: number[]) => void;
  readonly reject: (err: unknown) => void;
}

interface Pending {
  readonly fields: string[];
  readonly index: Map<string, number>;
  readonly waiters: Waiter[];
}

export class HashReadBatcher {
  private pending = new Map<string, Pending>();
  private scheduled = false;

  constructor(private readonly store: Pick<Store, 'hmget'>) {}

  /** The fields' values (0 when absent), in the order asked, as store.hmget gives them; read
   * together with every other read asked for before the event loop's next check phase. */
  read(key: string, fields: readonly string[]): Promise<number[]> {
    let p = this.pending.get(key);
    if (!p) {
      p = { fields: [], index: new Map(), waiters: [] };
      this.pending.set(key, p);
    }
    const positions = new Array<number>(fields.length);
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      let at = p.index.get(f);
      if (at === undefined) {
        at = p.fields.length;
        p.fields.push(f);
        p.index.set(f, at);
      }
      positions[i] = at;
    }
    const waiters = p.waiters;
    const done = new Promise<number[]>((resolve, reject) => waiters.push({ positions, resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      // setImmediate, not a microtask: replies from the workers that arrived together are all
      // handled (and their reads asked for) before the check phase.
      setImmediate(() => this.flush());
    }
    return done;
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = new Map();
    for (const [key, p] of batch) {
      this.store.hmget(key, p.fields).then(
        (values) => {
          for (const w of p.waiters) {
            const out = new Array<number>(w.positions.length);
            for (let i = 0; i < out.length; i++) out[i] = values[w.positions[i]!] ?? 0;
            w.resolve(out);
          }
        },
        (err: unknown) => {
          for (const w of p.waiters) w.reject(err);
        },
      );
    }
  }
}
