// Hiding words from filters is itself evidence: no mail program splits words with spaces, puts a
// Cyrillic "о" in an English word or writes zero-width characters between letters (normalise.ts
// counts each). Thresholds sit above what ordinary mail does by accident (a stray split word, a
// soft hyphen, a Russian name in an English mail).
import type { Rule } from '../rules.ts';

export const SPLIT_WORDS: Rule = {
  name: 'SPLIT_WORDS',
  points: 1.0,
  description: 'Three or more words split by spaces into pieces that are not words ("hac ker", "ope rating")',
  test: (_m, f) => f.rejoined.length >= 3,
};

export const MIXED_SCRIPT_WORDS: Rule = {
  name: 'MIXED_SCRIPT_WORDS',
  points: 1.5,
  description: 'Two or more Latin words with Cyrillic or Greek look-alike letters inside',
  test: (_m, f) => f.mixedScriptWords >= 2,
};

export const INVISIBLE_IN_WORDS: Rule = {
  name: 'INVISIBLE_IN_WORDS',
  points: 1.0,
  description: 'Three or more zero-width or direction-control characters between letters of words',
  test: (_m, f) => f.invisibleInWords >= 3,
};
