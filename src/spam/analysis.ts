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
  /** The tokens' hashes, when the reader knew the database's seed (a worker does). */
  readonly hashes?: Float64Array;
  /** The rules that fired, for the context the message was read with. */
  readonly hits: readonly RuleHit[];
  /** Identifies the message for learning (see hash.ts); computed on first use. */
  readonly digest: string;
}

/** The plain-data part of an Analysis, as a worker sends it back. */
export interface AnalysisData {
  readonly tokens: string[];
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

/** An Analysis from its data and the raw message; the digest is read from the raw bytes only
 * when learning asks for it. */
export function toAnalysis(data: AnalysisData, raw: Buffer | string, maxBytes: number): Analysis {
  let digest: string | undefined;
  return {
    tokens: data.tokens,
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
