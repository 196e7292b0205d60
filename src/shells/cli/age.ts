// Ages as the queue and quarantine commands show and take them: "45m", "6h", "3d".
import { parseDuration } from '../../config/units.ts';
import { CliError, EXIT } from './index.ts';

/** A compact age: minutes below an hour, hours below two days, then days. */
export function age(ms: number): string {
  const m = Math.max(0, Math.floor(ms / 60_000));
  if (m < 60) return `${m}m`;
  if (m < 48 * 60) return `${Math.floor(m / 60)}h`;
  return `${Math.floor(m / 1440)}d`;
}

/** The milliseconds of an `--older-than` value; a usage error naming it (with `examples`) if it is not an age. */
export function olderThanMs(text: string, examples: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new CliError(`--older-than ${JSON.stringify(text)} is not an age; write e.g. ${examples}`, EXIT.usage);
  return ms;
}
