// Who may import whom (ARCHITECTURE.md): read every import line under src/ and check it against
// the layer rules. Keeps the queue the only channel between receiving and delivering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Top folder of a file under src/ ("core", "ingress", ...; "main" for src/main.ts). */
const layer = (file: string): string => path.relative(SRC, file).split(path.sep)[0]!.replace(/\.ts$/, '');

// Layers each layer may import from (besides itself). Type-only imports count too: a type
// dependency is still a dependency of the design.
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  config: ['core'],
  // observe keeps dashboard figures in the store across restarts.
  observe: ['core', 'store'],
  store: ['core', 'observe'],
  directory: ['core'],
  spam: ['core', 'store', 'observe'],
  pipeline: ['core', 'observe', 'store', 'config'],
  checks: ['pipeline', 'core', 'spam', 'guard', 'observe', 'store', 'config'],
  queue: ['core', 'observe', 'store'],
  // The guard uses no check: the checks use the guard (no cycle).
  guard: ['core', 'observe', 'store', 'config', 'queue', 'pipeline'],
  ingress: ['pipeline', 'queue', 'config', 'core', 'observe', 'store', 'checks'],
  delivery: ['queue', 'config', 'core', 'observe', 'store', 'guard'],
  policyd: ['pipeline', 'core', 'config', 'observe', 'store', 'checks'],
  doctor: ['config', 'core', 'observe', 'store', 'queue', 'checks', 'delivery'],
  // The importer writes mailboxes through app/accounts (as the CLI does) and audits with doctor.
  import: ['config', 'core', 'checks', 'doctor', 'app'],
  app: ['*'],
  shells: ['app', 'core', 'config', 'observe', 'store', 'queue', 'spam', 'doctor', 'guard', 'policyd', 'directory', 'delivery', 'ingress', 'pipeline', 'checks', 'import'],
  main: ['shells'],
};

// The hard rules, whatever the table says: receiving and delivering meet only at the queue.
const FORBIDDEN: Array<[string, string]> = [
  ['ingress', 'delivery'],
  ['delivery', 'ingress'],
  ['delivery', 'pipeline'],
  ['queue', 'ingress'],
  ['queue', 'delivery'],
];

test('architecture: imports follow the layer rules', () => {
  const problems: string[] = [];
  for (const file of files(SRC)) {
    const from = layer(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'/gm)) {
      const target = path.resolve(path.dirname(file), m[1]!);
      if (!target.startsWith(SRC)) continue;
      const to = layer(target);
      if (to === from) {
        // Checks stand alone: one check never imports another (shared code lives in checks/lib).
        if (from === 'checks' && path.dirname(target) === path.join(SRC, 'checks') && path.dirname(file) === path.join(SRC, 'checks') && !target.endsWith('index.ts') && !file.endsWith('index.ts')) {
          problems.push(`${path.relative(SRC, file)} imports another check ${path.relative(SRC, target)}`);
        }
        continue;
      }
      const allowed = ALLOWED[from];
      if (!allowed) problems.push(`${path.relative(SRC, file)}: layer "${from}" has no rule in this test`);
      else if (!allowed.includes('*') && !allowed.includes(to)) problems.push(`${path.relative(SRC, file)} (${from}) imports ${path.relative(SRC, target)} (${to})`);
      if (FORBIDDEN.some(([a, b]) => a === from && b === to)) problems.push(`${path.relative(SRC, file)}: ${from} must never import ${to}`);
    }
  }
  assert.deepEqual(problems, []);
});
