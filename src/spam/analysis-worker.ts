// The body of an analysis worker thread (analysis-pool.ts): reads each message it is sent and
// answers with its tokens (packed into one string, see PackedAnalysisData), their hashes and the
// rules that fired. Holds no state between messages.
import { serveWorker } from '../core/worker-pool.ts';
import { analyzeData, packAnalysisData, type PackedAnalysisData } from './analysis.ts';
import type { AnalysisRequest } from './analysis-pool.ts';

serveWorker<AnalysisRequest, PackedAnalysisData>('analysis-worker.ts', (m) => {
  const raw = Buffer.from(m.raw.buffer, m.raw.byteOffset, m.raw.byteLength);
  const data = packAnalysisData(analyzeData(raw, m.maxBytes, m.ctx, m.seed));
  // The hashes and offsets are handed over, not copied.
  const transfer: ArrayBuffer[] = [data.ends.buffer as ArrayBuffer];
  if (data.hashes) transfer.push(data.hashes.buffer as ArrayBuffer);
  return { value: data, transfer };
});
