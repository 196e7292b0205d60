// The body of a spool scan reader thread (scan-pool.ts): reads each batch of spool files it is sent
// (scan-rows.ts) and hands the cells back without a copy. Holds no state between batches.
import { serveWorker } from '../core/worker-pool.ts';
import { readRows, type RowsRequest, type ScanRows } from './scan-rows.ts';

serveWorker<RowsRequest, ScanRows>('scan-worker.ts', (req) => {
  const rows = readRows(req);
  return { value: rows, transfer: [rows.cells.buffer as ArrayBuffer] };
});
