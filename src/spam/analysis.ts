// Reading one message for the filter, the part that needs no database: MIME, tokens and the
// rules. Pure and synchronous, so it runs the same on the event loop or in a worker thread
// (analysis-pool.ts), where a long HTML spam cannot hold up other SMTP sessions.
import { messageDigest, tokenHashes } from './hash.ts';
import { parseMessage, splitMessage } from './mime.ts';
import { RULES, runRules, type RuleContext, type RuleHit } from './rules.ts';
import { tokenize } from './tokenize.ts';

/** What scoring and learning need from a message. */
export interface Analysis {
  /** Distinct tokens, in the order first seen. */
  readonly tokens: readonly string[];
  /** How many tokens (without making the list when it came packed from a worker). */
  readonly tokenCount: number;
  /** The i-th token (without making the whole list). */
  readonly tokenAt: (i: number) => string;
  /** The tokens' hashes, when the reader knew the database's seed (a worker does). */
  readonly hashes?: Float64Array;
  /** The rules that fired, for the context the message was read with. */
  readonly hits: readonly RuleHit[];
  /** Identifies the message for learning (see hash.ts); computed on first use. */
  readonly digest: string;
}

/** The plain-data part of an Analysis. */
export interface AnalysisData {
  readonly tokens: string[];
  readonly hashes?: Float64Array;
  readonly hits: RuleHit[];
}

/** An AnalysisData as a worker sends it back: the tokens concatenated into one string with the
 * end offset of each. One string crosses between threads for the price of a copy; a list of a few
 * hundred strings costs a structured clone of each, on the receiving (scoring) thread too. */
export interface PackedAnalysisData {
  readonly text: string;
  readonly ends: Uint32Array;
  readonly hashes?: Float64Array;
  readonly hits: RuleHit[];
}

/** Reads a message; with the database's seed, hashes its tokens too (work off the main thread). */
export function analyzeData(raw: Buffer | string, maxBytes: number, ctx: RuleContext, seed?: number): AnalysisData {
  const message = parseMessage(raw, { maxBytes });
  const { tokens, facts } = tokenize(message);
  const list = [...tokens];
  const hits = runRules(message, facts, ctx, RULES);
  return seed === undefined ? { tokens: list, hits } : { tokens: list, hashes: tokenHashes(list, seed), hits };
}

export function packAnalysisData(d: AnalysisData): PackedAnalysisData {
  const ends = new Uint32Array(d.tokens.length);
  let at = 0;
  for (let i = 0; i < d.tokens.length; i++) ends[i] = at += d.tokens[i]!.length;
  return { text: d.tokens.join(''), ends, ...(d.hashes ? { hashes: d.hashes } : {}), hits: d.hits };
}

/** An Analysis from its data (plain or packed) and the raw message; the digest is read from the
 * raw bytes only when learning asks for it, the token list made only when asked for. */
export function toAnalysis(data: AnalysisData | PackedAnalysisData, raw: Buffer | string, maxBytes: number): Analysis {
  let digest: string | undefined;
  let tokens: string[] | undefined = 'tokens' in data ? data.tokens : undefined;
  const packed = 'text' in data ? data : undefined;
  const tokenAt = (i: number): string => (tokens ? tokens[i]! : packed!.text.slice(i === 0 ? 0 : packed!.ends[i - 1], packed!.ends[i]));
  return {
    get tokens() {
      if (!tokens) {
        const n = packed!.ends.length;
        const list = new Array<string>(n);
        for (let i = 0; i < n; i++) list[i] = tokenAt(i);
        tokens = list;
      }
      return tokens;
    },
    tokenCount: tokens ? tokens.length : packed!.ends.length,
    tokenAt,
    ...(data.hashes ? { hashes: data.hashes } : {}),
    hits: data.hits,
    get digest() {
      if (digest === undefined) {
        const { head, body } = splitMessage(raw, maxBytes);
        digest = messageDigest(head, body);
      }
      return digest;
    },
  };
}
