// Text shared by the report commands (`mailward dmarc report`, `mailward tlsrpt report`): the
// line shown while no report has arrived, and the list of report files refused on arrival.

/** A time as "YYYY-MM-DD HH:MM" (UTC). */
export const minute = (ms: number): string => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');

/** Where the reports arrive and how often, or how to turn reading them on. */
export function noReportsLine(o: { readonly enabled: boolean; readonly addresses: readonly string[]; readonly record: string; readonly cadence: string; readonly setting: string }): string {
  return o.enabled
    ? `no reports yet. They arrive at ${o.addresses.join(', ')} (the rua of your ${o.record} record, see mailward dns records), ${o.cadence}.`
    : `no reports: reading them is off (${o.setting}: false); set it to true to keep the reports that arrive at your rua.`;
}

/** The refused report files, one line each, after a blank line; none when nothing was refused. */
export function refusedLines(refused: ReadonlyArray<{ readonly at: number; readonly file: string; readonly from: string; readonly reason: string }>): string[] {
  if (refused.length === 0) return [];
  return ['', `refused report files: ${refused.length}`, ...refused.map((r) => `  ${minute(r.at)} ${r.file} from ${r.from || '<>'}: ${r.reason}`)];
}
