// The spam filter's public surface, for the check, the CLI (`mailward learn`, `mailward spam
// score`) and the session (what a score means). Nothing here knows about SMTP.
export { SpamFilter, LearnBatch, BAYES_BANDS, formatProbability, type SpamFilterOptions, type SpamResult, type ScoreContext, type BayesBand, type BayesOutcome, type Label, type LearnOutcome, type ForgetOutcome } from './filter.ts';
export { type Analysis } from './analysis.ts';
export { AnalysisPool, type AnalysisPoolOptions } from './analysis-pool.ts';
export { classify, formatScore, markSubject, explain, formatExplanation, DEFAULT_THRESHOLDS, type SpamClass, type Thresholds, type Explanation, type StatusOptions } from './report.ts';
export { learnPaths, formatSummary, type LearnPathsOptions, type LearnSummary, type LearnProgress, type LearnCounts } from './train.ts';
export { learnFolderMoves, markedSpam, type FolderMoveOptions } from './folders.ts';
export { readMessages, readMbox, isMaildir, messageFiles, type SourceMessage, type ReadOptions } from './sources.ts';
export { RULES, type Rule, type RuleHit, type RuleContext } from './rules.ts';
export type { ExpireOptions, ExpireResult, Totals } from './bayes-db.ts';
