// Undoes the tricks spam uses to hide its words from filters, before the rules and Bayes read the
// text: compatibility forms (NFKC: full-width letters, ligatures, mathematical alphabets),
// invisible characters (zero-width, soft hyphen, bidi controls), look-alike letters from other
// scripts inside Latin words (Cyrillic "а" in "pаy"), and words split by a single space
// ("hac ker", "ope rating sys tem") when the joined form is a known word and a piece is not.
// Reports what it found, because the hiding itself is evidence (rules/obfuscation.ts).
import { WORDS_DATA } from './words-data.ts';

export interface Normalised {
  /** The text with the tricks undone (case kept). */
  readonly text: string;
  /** Invisible characters (zero-width, soft hyphen, word joiner, bidi controls) between two letters. */
  readonly invisibleInWords: number;
  /** Words that mixed Latin with Cyrillic or Greek letters before folding. */
  readonly mixedScriptWords: number;
  /** Words re-joined from pieces split by spaces, lower-case. */
  readonly rejoined: readonly string[];
}

const WORDS: ReadonlySet<string> = new Set(WORDS_DATA.split(/\s+/).filter((w) => w.length > 0));
// Words spam splits although both halves are words themselves ("bit coin", "pass word", "web
// cam"): joined even so. Kept to compounds whose halves rarely stand side by side in ordinary text.
const COMPOUNDS: ReadonlySet<string> = new Set(['bitcoin', 'bitcoins', 'password', 'passwords', 'webcam', 'malware', 'spyware', 'username', 'screenshot', 'screenshots', 'smartphone', 'ransomware', 'keylogger', 'cryptocurrency', 'blockchain', 'livestream']);

/** Whether a lower-case word is in the shipped list of known words. */
export function isKnownWord(w: string): boolean {
  return WORDS.has(w);
}

// Unicode's confusables data (UTS #39, confusables.txt) maps these Cyrillic and Greek letters to
// the Latin letter they are drawn like; only the ones with a single-letter Latin prototype that
// spam uses are kept here (the whole table is 6,000 entries of symbols no word filter cares
// about). Applied only inside words that are Latin otherwise, so Russian and Greek text is left
// as written.
const CONFUSABLE: Readonly<Record<string, string>> = {
  // Cyrillic lower case
  а: 'a', в: 'b', с: 'c', ԁ: 'd', е: 'e', ё: 'e', һ: 'h', і: 'i', ї: 'i', ј: 'j', к: 'k', м: 'm', н: 'h', о: 'o', р: 'p', ԛ: 'q',
  ѕ: 's', т: 't', у: 'y', ԝ: 'w', х: 'x', ү: 'y', ӏ: 'l', ɡ: 'g',
  // Cyrillic upper case
  А: 'A', В: 'B', С: 'C', Е: 'E', Н: 'H', І: 'I', Ј: 'J', К: 'K', М: 'M', О: 'O', Р: 'P', Ѕ: 'S', Т: 'T', Х: 'X', У: 'Y', Ү: 'Y',
  Ԝ: 'W', Ӏ: 'I',
  // Greek lower case
  α: 'a', ο: 'o', ρ: 'p', ν: 'v', υ: 'u', ι: 'i', κ: 'k', χ: 'x', τ: 't', ε: 'e', ϲ: 'c', ϳ: 'j',
  // Greek upper case
  Α: 'A', Β: 'B', Ε: 'E', Ζ: 'Z', Η: 'H', Ι: 'I', Κ: 'K', Μ: 'M', Ν: 'N', Ο: 'O', Ρ: 'P', Τ: 'T', Υ: 'Y', Χ: 'X',
};

// U+034F (a combining mark), U+200D (the zero-width joiner) and the Hangul and Khmer fillers stand outside the class: inside one
// they would join with their neighbours.
const INVISIBLE = /(?:[\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]|\u034f|\u200d|\u115f|\u1160|\u17b4|\u17b5)/g;
const INVISIBLE_BETWEEN_LETTERS = /(?<=\p{L})(?:[\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]|\u034f|\u200d|\u115f|\u1160|\u17b4|\u17b5)+(?=\p{L})/gu;
const HAS_INVISIBLE = new RegExp(INVISIBLE.source);
const NON_ASCII = /[^\x00-\x7f]/;
const HAS_FOREIGN = /[\u0370-\u03ff\u0400-\u052f\u0261]/;
// Whole words, tested for a foreign letter in the callback: a pattern that looks for the foreign
// letter inside the word backtracks through every long Latin word (quadratic in its length).
const WORD = /[\p{L}\p{M}]+/gu;
const LATIN = /[A-Za-z]/;
const MAX_TEXT = 256 * 1024;
const REJOIN_TEXT = 12 * 1024;

export function normaliseText(input: string): Normalised {
  let text = input.length > MAX_TEXT ? input.slice(0, MAX_TEXT) : input;
  let invisibleInWords = 0;
  let mixedScriptWords = 0;
  if (NON_ASCII.test(text)) {
    text = text.normalize('NFKC');
    if (HAS_INVISIBLE.test(text)) {
      for (const m of text.matchAll(INVISIBLE_BETWEEN_LETTERS)) invisibleInWords += m[0].length;
      text = text.replace(INVISIBLE, '');
    }
    const foreign = HAS_FOREIGN.test(text);
    const latinShare = foreign ? share(text) : 1;
    if (foreign) text = text.replace(WORD, (w) => {
      if (!HAS_FOREIGN.test(w)) return w;
      const mixed = LATIN.test(w);
      // A word of look-alikes only is folded when the text around it is Latin ("рау" in an
      // English mail); in Russian or Greek text it is a word of that language.
      if (!mixed && latinShare < 0.8) return w;
      let out = '';
      for (const ch of w) {
        if (ch < '\x80') {
          out += ch;
          continue;
        }
        const f = CONFUSABLE[ch];
        if (f === undefined) return w; // a letter with no Latin twin: a real foreign word
        out += f;
      }
      if (mixed) mixedScriptWords++;
      return out;
    });
  }
  const rejoined: string[] = [];
  // Split words are looked for in the first REJOIN_TEXT characters only: hiding is done where the
  // message speaks (extortion texts are a few KB), and long newsletters need not pay for it.
  text = text.length > REJOIN_TEXT ? rejoin(text.slice(0, REJOIN_TEXT), rejoined) + text.slice(REJOIN_TEXT) : rejoin(text, rejoined);
  return { text, invisibleInWords, mixedScriptWords, rejoined };
}

/** The share of Latin letters among the letters of the text (sampled from its start). */
function share(text: string): number {
  const sample = text.slice(0, 4000);
  const letters = sample.match(/\p{L}/gu)?.length ?? 0;
  const latin = sample.match(/[A-Za-z]/g)?.length ?? 0;
  return letters === 0 ? 0 : latin / letters;
}

// Runs of letter-only pieces of two letters or more, each separated by one space (single letters
// are "a" and "I" in running text, and the letter-by-letter "v i a g r a" is joined by tokenize.ts).
// ASCII boundaries only: a non-ASCII letter next to a run is checked in the callback (a Unicode
// look-behind at every position cost more than the rest of the normaliser).
const PIECES = /(?<![A-Za-z0-9'’-])[A-Za-z]{2,12}(?: [A-Za-z]{2,12})+(?![A-Za-z0-9'’-])/g;
const LETTER = /\p{L}/u;
// Halves of COMPOUNDS that are words themselves: only after one of them is a join of two known
// words tried.
const COMPOUND_HEADS: ReadonlySet<string> = new Set(
  [...COMPOUNDS].flatMap((c) => [...Array(c.length - 1).keys()].map((i) => c.slice(0, i + 1))).filter((h) => WORDS.has(h)),
);

/** Re-joins "hac ker" → "hacker": a known word made of pieces one of which is not a word. */
function rejoin(text: string, out: string[]): string {
  if (text.indexOf(' ') < 0) return text;
  return text.replace(PIECES, (run: string, at: number) => {
    if (at > 0 && text.charCodeAt(at - 1) > 0x7f && LETTER.test(text[at - 1]!)) return run;
    const end = at + run.length;
    if (end < text.length && text.charCodeAt(end) > 0x7f && LETTER.test(text[end]!)) return run;
    const lowerRun = run.toLowerCase();
    // Most runs are words only, with no compound's first half: nothing to join, and no arrays made.
    let from = 0;
    let candidate = false;
    while (!candidate) {
      const sp = lowerRun.indexOf(' ', from);
      const piece = lowerRun.slice(from, sp < 0 ? undefined : sp);
      if (!WORDS.has(piece) || COMPOUND_HEADS.has(piece)) candidate = true;
      if (sp < 0) break;
      from = sp + 1;
    }
    if (!candidate) return run;
    const lower = lowerRun.split(' ');
    const known = lower.map((w) => WORDS.has(w));
    let res: string[] | undefined;
    let pos = 0; // offset of piece i in run
    for (let i = 0; i < lower.length; ) {
      const j = joinAt(lower, known, i);
      if (j > i + 1) {
        res ??= run.slice(0, pos).split(' ').filter((x) => x.length > 0);
        let len = 0;
        for (let k = i; k < j; k++) len += lower[k]!.length + 1;
        const joined = run.slice(pos, pos + len - 1).replace(/ /g, '');
        if (out.length < 200) out.push(joined.toLowerCase());
        res.push(joined);
        pos += len;
        i = j;
      } else {
        if (res) res.push(run.slice(pos, pos + lower[i]!.length));
        pos += lower[i]!.length + 1;
        i++;
      }
    }
    return res ? res.join(' ') : run;
  });
}

/** Where a join starting at piece i ends (exclusive); i + 1 when there is none. Three pieces
 * are tried before two ("ope ra ting"). */
function joinAt(w: readonly string[], known: readonly boolean[], i: number): number {
  if (i + 1 >= w.length) return i + 1;
  const a = w[i]!;
  const b = w[i + 1]!;
  const allKnown = known[i]! && known[i + 1]!;
  if (allKnown && !COMPOUND_HEADS.has(a)) return i + 1;
  if (i + 2 < w.length) {
    const joined = a + b + w[i + 2]!;
    if (joined.length <= 16 && WORDS.has(joined) && (!allKnown || !known[i + 2] || COMPOUNDS.has(joined))) return i + 3;
  }
  const joined = a + b;
  if (joined.length >= 5 && WORDS.has(joined) && (!allKnown || COMPOUNDS.has(joined))) return i + 2;
  return i + 1;
}
