// The body of a password hashing thread (password.ts HashPool): derives one scrypt key per
// request, synchronously — this thread is the pool, so the work stays off libuv's shared
// threadpool, where the spool's fs calls run.
import { scryptSync } from 'node:crypto';
import { serveWorker } from './worker-pool.ts';
import type { DeriveRequest } from './password.ts';

serveWorker<DeriveRequest, Uint8Array>('password-worker.ts', (m) => {
  const key = scryptSync(m.password, m.salt, m.keylen, { N: m.N, r: m.r, p: m.p, maxmem: m.maxmem });
  const out = new Uint8Array(key.buffer, key.byteOffset, key.byteLength).slice();
  return { value: out, transfer: [out.buffer] };
});
