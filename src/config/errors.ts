// Operator-facing configuration errors. Each one names the key path, the value found and the fix,
// e.g. `config error at listeners.mx.port: "abc" is not a number. Fix: write a port number, e.g. 2525`.

export interface ConfigProblem {
  /** Dotted key path, e.g. "listeners.mx.port" or "relay.trustedNetworks[0]". */
  readonly path: string;
  /** What is wrong, including the value found. */
  readonly message: string;
  /** How to fix it. */
  readonly fix: string;
}

export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  readonly source: string;
  constructor(source: string, problems: readonly ConfigProblem[]) {
    super(problems.map((p) => formatProblem(p, source)).join('\n'));
    this.name = 'ConfigError';
    this.source = source;
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem, source?: string): string {
  const where = p.path === '' ? '(top level)' : p.path;
  return `config error at ${where}: ${p.message}${source ? ` (in ${source})` : ''}. Fix: ${p.fix}`;
}

/** Renders a zod-style path (["listeners","mx","port"], ["relay","trustedNetworks",0]) as text. */
export function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Shows a config value briefly for an error message. */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  if (s === undefined) return `a ${typeof v}`; // functions and symbols have no JSON form
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
