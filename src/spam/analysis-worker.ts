// The body of an analysis worker thread (analysis-pool.ts): reads each message it is sent and
// answers with its tokens (packed into one string, see PackedAnalysisData), their hashes and the
// rules that fired. Holds no state between messages.
import { parentPort } from 'node:worker_threads';
import { analyzeData, packAnalysisData } from './analysis.ts';
import type { AnalysisReply, AnalysisRequest } from './analysis-pool.ts';

const port = parentPort;
if (!port) throw new Error('analysis-worker.ts runs as a worker thread (see analysis-pool.ts)');

port.on('message', (m: AnalysisRequest) => {
  let reply: AnalysisReply;
  const transfer: ArrayBuffer[] = [];
  try {
    const raw = Buffer.from(m.raw.buffer, m.raw.byteOffset, m.raw.byteLength);
    const data = packAnalysisData(analyzeData(raw, m.maxBytes, m.ctx, m.seed));
    // The hashes and offsets are handed over, not copied.
    transfer.push(data.ends.buffer as ArrayBuffer);
    if (data.hashes) transfer.push(data.hashes.buffer as ArrayBuffer);
    reply = { id: m.id, data };
  } catch (err) {
    reply = { id: m.id, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply, transfer);
});
