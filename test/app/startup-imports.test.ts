// Start-up cost (issue #19, docs/decisions/0033): the modules `mailward serve` loads before its
// listener answers are the static import graph of src/main.ts. The heavy packages that no
// greeting needs (mailauth, mailparser, acme-client, nodemailer's client, the XML builder) must
// stay out of it: they load by dynamic import() when a message, a delivery or a renewal first
// needs them. This walks the graph as Node loads it (every `import`/`export ... from` that is not
// `import type`; with verbatimModuleSyntax an `import { type X }` is still a load) and fails
// naming the chain of files that pulls a heavy package in again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '../../src');
const HEAVY = ['mailauth', 'mailparser', 'acme-client', 'nodemailer/lib/smtp-connection', 'fast-xml-parser'];

/** The specifiers a module loads when it is evaluated: static imports and re-exports, not types. */
export function staticImports(source: string): string[] {
  const out: string[] = [];
  const re = /^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) if (!m[1]) out.push(m[2]!);
  return out;
}

/** Every package (bare specifier) reachable from `entry`, with the chain of files to it. */
function reachablePackages(entry: string): Map<string, string[]> {
  const packages = new Map<string, string[]>();
  const seen = new Set<string>([entry]);
  const todo: Array<{ file: string; chain: string[] }> = [{ file: entry, chain: [path.relative(SRC, entry)] }];
  for (let next = todo.pop(); next; next = todo.pop()) {
    for (const spec of staticImports(readFileSync(next.file, 'utf8'))) {
      if (spec.startsWith('node:')) continue;
      if (!spec.startsWith('.')) {
        if (!packages.has(spec)) packages.set(spec, next.chain);
        continue;
      }
      const file = path.resolve(path.dirname(next.file), spec);
      if (seen.has(file)) continue;
      seen.add(file);
      todo.push({ file, chain: [...next.chain, path.relative(SRC, file)] });
    }
  }
  return packages;
}

test('the walk sees value imports and re-exports, not type-only ones', () => {
  const src = ["import type { A } from 'a-types';", "import { type B, c } from 'c-pkg';", "export { d } from './d.ts';", "import './side.ts';", "export type { E } from 'e-types';", 'const x = await import(\'lazy\');'].join('\n');
  assert.deepEqual(staticImports(src), ['c-pkg', './d.ts', './side.ts']);
});

test('no heavy package is on the static import path of `mailward serve` (it is loaded when first needed)', () => {
  const packages = reachablePackages(path.join(SRC, 'main.ts'));
  // The walk found the real graph (a broken walk would pass vacuously).
  for (const expected of ['commander', 'zod', 'pino', 'yaml']) assert.ok([...packages.keys()].some((p) => p === expected || p.startsWith(`${expected}/`)), `the walk should reach ${expected}`);
  const eager = [...packages].filter(([spec]) => HEAVY.some((h) => spec === h || spec.startsWith(`${h}/`)));
  assert.deepEqual(
    eager.map(([spec, chain]) => `${spec} via ${chain.join(' → ')}`),
    [],
    'a heavy package is imported eagerly again: import it with await import() where it is first used',
  );
});
