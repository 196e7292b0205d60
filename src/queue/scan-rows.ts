// The start-up scan's file reading as a batch: a list of file names in, the catalog's facts of each
// readable file out as catalog-snapshot cells (snapshot-layout.ts) with a batch string table, plus
// the names that were corrupt, torn, unreadable or gone. Pure of the main thread's state, so it
// runs in a worker thread (scan-worker.ts) as well as inline; the main thread loads the cells into
// the catalog with Catalog.snapshotLoader, the snapshot's own fast path (docs/decisions/0045).
import { join } from 'node:path';
import { loadMessageSync, SpoolCorruptError } from './reader.ts';
import { LOGIN_NONE, MAILBOX_NONE, MAILBOX_SAME, STATUS_CODE } from './snapshot-layout.ts';

export interface RowsRequest {
  readonly dir: string;
  readonly names: readonly string[];
}

export interface ScanRows {
  /** The files read, in order; the cells hold one row per id, one after the other. */
  readonly ids: string[];
  readonly cells: Float64Array;
  readonly strings: string[];
  /** Files with torn (unacknowledged) state records that were skipped: name, records. */
  readonly torn: Array<[string, number]>;
  /** Files that are not usable spool files: name, the reason (they are moved aside). */
  readonly corrupt: Array<[string, string]>;
  /** Files that could not be read (permissions, I/O): name, the error's message. */
  readonly unreadable: Array<[string, string]>;
  /** Files gone since the listing. */
  readonly missing: string[];
}

/** Reads every named file of `dir` with the same checks as a single load (reader.ts). */
export function readRows(req: RowsRequest): ScanRows {
  const out: ScanRows = { ids: [], cells: new Float64Array(0), strings: [], torn: [], corrupt: [], unreadable: [], missing: [] };
  const index = new Map<string, number>();
  const str = (s: string): number => {
    let i = index.get(s);
    if (i === undefined) {
      i = out.strings.length;
      out.strings.push(s);
      index.set(s, i);
    }
    return i;
  };
  // One growing cell array for the batch; most messages take 5 + 4 cells.
  let cells = new Float64Array(req.names.length * 9 + 16);
  let n = 0;
  const room = (k: number): void => {
    if (n + k <= cells.length) return;
    const bigger = new Float64Array(Math.max(cells.length * 2, n + k));
    bigger.set(cells.subarray(0, n));
    cells = bigger;
  };
  for (const name of req.names) {
    let m;
    try {
      m = loadMessageSync(join(req.dir, name), name);
    } catch (err) {
      if (err instanceof SpoolCorruptError) out.corrupt.push([name, err.reason]);
      else out.unreadable.push([name, (err as Error).message]);
      continue;
    }
    if (!m) {
      out.missing.push(name);
      continue;
    }
    if (m.torn > 0) out.torn.push([name, m.torn]);
    const env = m.envelope;
    const rcpts = env.recipients;
    room(5 + 4 * rcpts.length);
    cells[n++] = 0; // held: the area decides (the loader is told)
    cells[n++] = env.receivedAt;
    cells[n++] = str(env.mailFrom);
    cells[n++] = env.client.login ? str(env.client.login.toLowerCase()) : LOGIN_NONE;
    cells[n++] = rcpts.length;
    for (let i = 0; i < rcpts.length; i++) {
      const r = rcpts[i]!;
      const s = m.states[i];
      cells[n++] = str(r.address);
      cells[n++] = r.mailbox === undefined ? MAILBOX_NONE : r.mailbox === r.address ? MAILBOX_SAME : str(r.mailbox);
      cells[n++] = STATUS_CODE[s?.status ?? 'pending'];
      cells[n++] = s?.nextAttemptAt ?? NaN;
    }
    out.ids.push(name);
  }
  // A copy of the used part only: it is handed over whole (transferred).
  return { ...out, cells: cells.slice(0, n) };
}
