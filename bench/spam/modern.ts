// The modern-mail set (test/fixtures/modern-mail, written for these tests) scored by a filter trained
// exactly as the public-corpus benchmark trains it: the learned 70 % of the SpamAssassin corpus,
// nothing from the modern set. Prints one row per message and a summary table.
// Run: node --import tsx bench/spam/modern.ts [--src DIR: score with another checkout's src/spam]
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { silentLogger } from '../../src/observe/log.ts';
import { SqliteStore } from '../../src/store/sqlite.ts';
import { loadCorpus } from './corpus.ts';

const args = process.argv.slice(2);
const srcAt = args.indexOf('--src');
const src = srcAt >= 0 ? resolve(args[srcAt + 1]!) : resolve(import.meta.dirname, '../../src');
const SPAM_AT = 5;
const { SpamFilter } = (await import(join(src, 'spam/filter.ts'))) as typeof import('../../src/spam/filter.ts');

export const MODERN_DIR = resolve(import.meta.dirname, '../../test/fixtures/modern-mail');

const work = await mkdtemp(join(tmpdir(), 'mailward-modern-'));
const store = new SqliteStore({ path: join(work, 'bayes.sqlite') }, silentLogger());
try {
  const { dir, messages } = loadCorpus();
  const filter = new SpamFilter({ store, ourDomains: ['example.org'] });
  const batch = filter.batch(1000);
  for (const m of messages) if (m.train) await batch.learn(readFileSync(join(dir, m.file)), m.spam ? 'spam' : 'ham');
  await batch.flush();
  const rows: string[] = [];
  const tally = { spam: [0, 0], ham: [0, 0] };
  for (const kind of ['spam', 'ham'] as const) {
    for (const f of readdirSync(join(MODERN_DIR, kind)).filter((x) => x.endsWith('.eml')).sort()) {
      const r = await filter.score(readFileSync(join(MODERN_DIR, kind, f)));
      const flagged = r.score >= SPAM_AT;
      tally[kind][0]!++;
      if (flagged) tally[kind][1]!++;
      rows.push(`| ${kind} | ${f.replace(/\.eml$/, '')} | ${r.score.toFixed(1)} | ${flagged ? 'spam' : 'ham'} | ${r.hits.map((h) => h.name).join(', ')} |`);
    }
  }
  process.stdout.write(
    [
      '| set | message | score | verdict | rules |',
      '|---|---|---|---|---|',
      ...rows,
      '',
      `spam at or above ${SPAM_AT}: ${tally.spam[1]}/${tally.spam[0]}; ham at or above ${SPAM_AT} (false positives): ${tally.ham[1]}/${tally.ham[0]}`,
      '',
    ].join('\n'),
  );
} finally {
  await store.close();
  await rm(work, { recursive: true, force: true });
}
