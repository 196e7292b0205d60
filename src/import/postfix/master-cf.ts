// Reads Postfix's master.cf (master(5)): one service per entry, continuation lines start with
// white space, '#' lines are comments. For each smtpd/postscreen service listening on inet we keep
// where it listens and its -o overrides (with the line each came from).
import type { Param } from './main-cf.ts';

export interface Service {
  /** The first field: "smtp", "submission", "127.0.0.1:10025", "2525". */
  readonly name: string;
  readonly type: string;
  /** The program: smtpd, postscreen, pipe, lmtp, ... */
  readonly command: string;
  readonly args: readonly string[];
  /** -o overrides, by parameter name. */
  readonly overrides: ReadonlyMap<string, Param>;
  /** "master.cf:17". */
  readonly source: string;
}

export function parseMasterCf(text: string, file = 'master.cf', bad: Array<{ source: string; text: string }> = []): Service[] {
  const entries: Array<{ text: string; line: number; lines: number[] }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (/^\s*#/.test(raw) || raw.trim() === '') return;
    const last = entries[entries.length - 1];
    if (/^\s/.test(raw) && last) {
      last.text += ` ${raw.trim()}`;
      last.lines.push(i + 1);
    } else entries.push({ text: raw.trim(), line: i + 1, lines: [i + 1] });
  });
  const services: Service[] = [];
  for (const e of entries) {
    const words = e.text.replace(/\{\s*/g, '{').replace(/\s*\}/g, '}').split(/\s+/);
    if (words.length < 8) {
      bad.push({ source: `${file}:${e.line}`, text: e.text }); // postconf -M: fatal: bad field count
      continue;
    }
    const [name, type, , , , , , command, ...rest] = words as [string, string, string, string, string, string, string, string, ...string[]];
    const overrides = new Map<string, Param>();
    const args: string[] = [];
    for (let i = 0; i < rest.length; i++) {
      const w = rest[i]!;
      if (w === '-o' && rest[i + 1] !== undefined) {
        // "-o name=value" or "-o {name = value with spaces}" (Postfix 3.0+)
        let opt = rest[++i]!;
        if (opt.startsWith('{')) {
          while (!opt.endsWith('}') && i + 1 < rest.length) opt += ` ${rest[++i]}`;
          opt = opt.slice(1, -1);
        }
        const eq = opt.indexOf('=');
        if (eq > 0) {
          const pname = opt.slice(0, eq).trim();
          overrides.set(pname, { name: pname, value: opt.slice(eq + 1).trim(), source: `${file}:${lineOf(text, e.lines, `${pname}=`) ?? e.line} (-o)` });
        }
      } else args.push(w);
    }
    services.push({ name, type, command: command.split('/').pop()!, args, overrides, source: `${file}:${e.line}` });
  }
  return services;
}

/** The line of an entry's continuation lines that holds `needle` (an -o), for the report. */
function lineOf(text: string, lines: readonly number[], needle: string): number | undefined {
  const all = text.split(/\r?\n/);
  return lines.find((n) => all[n - 1]!.replace(/\s*=\s*/g, '=').includes(needle));
}

/** Port numbers of the service names master.cf uses (/etc/services). */
const PORTS: Readonly<Record<string, number>> = { smtp: 25, submission: 587, smtps: 465, submissions: 465, urd: 465 };

/** Where an inet service listens: host ("" = inet_interfaces) and port, or undefined if unreadable. */
export function serviceAddress(name: string): { host: string; port: number } | undefined {
  const m = /^(?:\[?([^\]]*?)\]?:)?([A-Za-z0-9-]+)$/.exec(name);
  if (!m) return undefined;
  const port = /^\d+$/.test(m[2]!) ? Number(m[2]) : PORTS[m[2]!];
  return port === undefined ? undefined : { host: m[1] ?? '', port };
}
