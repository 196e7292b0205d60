// What the uribl check's reading of a message costs and finds, on the public corpus's held-out
// part: CPU time of messageUriTargets per message (MIME, normaliser, extraction, registrable
// domains), and how many domains and IP addresses a message would have looked up.
// Run: node --import tsx bench/spam/uris.ts
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { messageUriTargets } from '../../src/spam/uris.ts';
import { loadCorpus } from './corpus.ts';

const { dir, messages } = loadCorpus();
const held = messages.filter((m) => !m.train);
const raws = held.map((m) => readFileSync(join(dir, m.file)));
const counts: number[] = [];
let ips = 0;
const passes: number[] = [];
for (let pass = 0; pass < 3; pass++) {
  const t0 = process.cpuUsage();
  for (const raw of raws) {
    const t = messageUriTargets(raw, 256 * 1024, 20);
    if (pass === 0) {
      counts.push(t.domains.length + t.ips.length);
      ips += t.ips.length;
    }
  }
  const u = process.cpuUsage(t0);
  passes.push((u.user + u.system) / 1000 / raws.length);
}
counts.sort((a, b) => a - b);
const sum = counts.reduce((s, n) => s + n, 0);
const fmt = (ms: number): string => ms.toFixed(3);
console.log(`held-out messages: ${raws.length}; CPU per message (3 passes): ${passes.map(fmt).join(', ')} ms`);
console.log(`names to look up per message (limit 20): mean ${(sum / counts.length).toFixed(1)}, median ${counts[counts.length >> 1]}, 90th percentile ${counts[Math.floor(counts.length * 0.9)]}, at the limit ${counts.filter((n) => n >= 20).length}; none ${counts.filter((n) => n === 0).length}; IP links ${ips}`);
