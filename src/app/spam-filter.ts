// The spam filter as the operator tools and background jobs build it: the `checks.spam` options
// from the config (validated like the pipeline does) and a SpamFilter over the shared store with
// the same settings as the data-stage check, so a score from `mailward spam score` matches the server's.
import type { Config } from '../config/load.ts';
import { ConfigError, pathText, showValue } from '../config/errors.ts';
import { SpamOptions, type SpamCheckOptions } from '../checks/spam.ts';
import { SpamFilter } from '../spam/filter.ts';
import type { Store } from '../store/store.ts';

/**
 * The `checks.spam` options with their defaults (the thresholds the sessions classify with, also
 * when the spam check is in no list: other checks' points add up to the same total). Throws
 * ConfigError naming the setting.
 */
export function spamSettings(config: Config): SpamCheckOptions {
  const r = SpamOptions.safeParse(config.checks.spam ?? {}, { reportInput: true });
  if (r.success) return r.data;
  throw new ConfigError(
    config.source,
    r.error.issues.map((issue) => ({
      path: pathText(['checks', 'spam', ...issue.path]),
      message: `${issue.message} (got ${showValue((issue as { input?: unknown }).input)})`,
      fix: 'see the "spam" check in examples/mailward.yaml',
    })),
  );
}

/**
 * A filter reading messages on the calling thread (no worker pool: tools and timers, not the hot
 * path), without the count cache: these learn or score messages one at a time and never read a
 * count twice, so the cache's 8 MB would buy nothing.
 */
export function openSpamFilter(config: Config, store: Store, opts: { readonly settings?: SpamCheckOptions; readonly clock?: () => number } = {}): SpamFilter {
  const s = opts.settings ?? spamSettings(config);
  return new SpamFilter({ store, ourDomains: config.domains, maxBytes: s.maxBytes, cache: false, ...(opts.clock ? { clock: opts.clock } : {}) });
}
