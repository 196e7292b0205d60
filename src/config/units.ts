// Human-friendly units in the config: durations ("5m", "1h", "500ms", or a number of milliseconds)
// and sizes ("25MB", "64KB", or a number of bytes). Parsed once at load into plain numbers.
import { z } from 'zod';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(v);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (DURATION_UNITS[m[2]!.toLowerCase()] ?? NaN));
}

export function parseSize(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(v);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? NaN));
}

/** A duration setting: "5m", "1h", "30s", "500ms", "5d" or a number of milliseconds. */
export const Duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a duration`, params: { fix: 'write e.g. "30s", "5m", "1h", "5d" or a number of milliseconds' } });
    return z.NEVER;
  }
  return ms;
});

/** A size setting: "25MB", "64KB" or a number of bytes. */
export const Size = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === undefined) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a size`, params: { fix: 'write e.g. "25MB", "64KB" or a number of bytes' } });
    return z.NEVER;
  }
  return n;
});
