// Reads the V8 CPU profiles (node --cpu-prof) written while Mailward was under load and says
// where the time went: self time by area (our source folders, each npm package, Node's own
// modules, GC, idle) and the functions with the most self time, as markdown tables.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** The area a script belongs to: "src/ingress/smtp", "npm:pino", "node:internal", or V8's own entries. */
function area(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const mod = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (mod) return `npm:${mod[1]}`;
  if (url.startsWith('node:')) return url.startsWith('node:internal') ? 'node:internal' : url;
  const dist = /\/(?:dist|src)\/(.+)\/[^/]+\.[jt]s$/.exec(url);
  if (dist) return `src/${dist[1]}`;
  const top = /\/(?:dist|src)\/[^/]+\.[jt]s$/.exec(url);
  if (top) return 'src';
  return url;
}

function file(url: string): string {
  const m = /\/(?:dist|src)\/(.+)$/.exec(url) ?? /node_modules\/(.+)$/.exec(url);
  return m ? m[1]! : url.replace(/^file:\/\//, '');
}

/** One .cpuprofile read back: its nodes by id, each node's parent, and the sampling interval (ms). */
function readProfile(file: string): { prof: CpuProfile; byId: Map<number, ProfileNode>; parent: Map<number, number>; interval: number } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Each sample counts for the usual sampling interval, not for the time since the previous one:
  // on a loaded machine the thread is sometimes descheduled for 100 ms or more, and that gap
  // would be charged to whatever function happened to run when it resumed.
  const sorted = [...prof.timeDeltas].sort((a, b) => a - b);
  const interval = (sorted[Math.floor(sorted.length / 2)] ?? 1000) / 1000;
  return { prof, byId, parent, interval };
}

export function summarizeProfile(dir: string, top = 25): string {
  let totalMs = 0;
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) return `no .cpuprofile in ${dir} (did the server exit cleanly?)`;
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const byOurFile = new Map<string, number>();
  for (const f of files) {
    const { prof, byId, parent, interval } = readProfile(path.join(dir, f));
    const selfMs = new Map<number, number>();
    prof.samples.forEach((id) => selfMs.set(id, (selfMs.get(id) ?? 0) + interval));
    for (const [id, ms] of selfMs) {
      const n = byId.get(id)!;
      const { functionName, url, lineNumber } = n.callFrame;
      totalMs += ms;
      const a = area(url, functionName);
      byArea.set(a, (byArea.get(a) ?? 0) + ms);
      const fn = `${functionName || '(anonymous)'} ${url ? `${file(url)}:${lineNumber + 1}` : ''}`.trim();
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
      // The nearest caller in our own code: native and library time charged to the file that asked for it.
      let at: number | undefined = id;
      let ours = functionName.startsWith('(') && url === '' ? functionName : '(no Mailward frame on the stack)';
      while (at !== undefined) {
        const u = byId.get(at)!.callFrame.url;
        if (/\/(?:dist|src)\//.test(u) && !u.includes('node_modules')) {
          ours = file(u).replace(/\.js$/, '.ts');
          break;
        }
        at = parent.get(at);
      }
      byOurFile.set(ours, (byOurFile.get(ours) ?? 0) + ms);
    }
  }
  const busy = totalMs - (byArea.get('(idle)') ?? 0);
  const pct = (ms: number, of: number): string => `${((100 * ms) / of).toFixed(1)} %`;
  const lines: string[] = [];
  lines.push(`## Where Mailward's main thread spent its time (${files.join(', ')})`);
  lines.push('');
  lines.push(`Profiled ${(totalMs / 1000).toFixed(1)} s, of which busy (not idle) ${(busy / 1000).toFixed(1)} s = ${pct(busy, totalMs)}.`);
  lines.push('');
  lines.push('| area | self time (ms) | share of busy time |');
  lines.push('|---|---:|---:|');
  for (const [a, ms] of [...byArea].filter(([a]) => a !== '(idle)').sort((x, y) => y[1] - x[1]).slice(0, 30)) lines.push(`| ${a} | ${ms.toFixed(0)} | ${pct(ms, busy)} |`);
  lines.push('');
  lines.push('Charged to the nearest Mailward file on the stack (native and library time go to the file that called them):');
  lines.push('');
  lines.push('| our file | time (ms) | share of busy time |');
  lines.push('|---|---:|---:|');
  for (const [fn, ms] of [...byOurFile].filter(([fn]) => fn !== '(idle)').sort((x, y) => y[1] - x[1]).slice(0, top)) lines.push(`| ${fn} | ${ms.toFixed(0)} | ${pct(ms, busy)} |`);
  lines.push('');
  lines.push('| function | self time (ms) | share of busy time |');
  lines.push('|---|---:|---:|');
  for (const [fn, ms] of [...byFunction].filter(([fn]) => !fn.startsWith('(idle)')).sort((x, y) => y[1] - x[1]).slice(0, top)) lines.push(`| \`${fn}\` | ${ms.toFixed(0)} | ${pct(ms, busy)} |`);
  return lines.join('\n');
}


/** The phases of one message, in the order a message meets them. */
export const PHASES = [
  'accept + greeting',
  'EHLO / TLS',
  'SMTP commands (MAIL, RCPT, QUIT, replies)',
  'checks (pipeline, DNS, store, spam)',
  'DATA (framing, headers, Received)',
  'spool write + fsync',
  'delivery (Maildir)',
  'logging',
  'metrics',
  'garbage collector',
  'start-up (modules, config)',
  'other (no Mailward frame)',
] as const;
export type Phase = (typeof PHASES)[number];

// A Map, not an object: "constructor" must not find Object.prototype's.
const CONNECTION_PHASE = new Map<string, Phase>([
  ...['constructor', 'run', 'greet', 'SmtpConnection'].map((f): [string, Phase] => [f, 'accept + greeting']),
  ...['helo', 'ehloReply', 'starttls', 'noteTls', 'tlsOffered', 'authOffered'].map((f): [string, Phase] => [f, 'EHLO / TLS']),
  ...['data', 'receiveData', 'endMessage', 'bdat', 'readChunk', 'startDataTimer', 'stopDataTimer'].map((f): [string, Phase] => [f, 'DATA (framing, headers, Received)']),
]);

/**
 * The phase of one stack frame, or undefined when the frame says nothing (Node's internals,
 * natives): the innermost frame that says something decides, so fsync called by the spool writer
 * is "spool", a DNS query made by a check is "checks", pino called by the session is "logging".
 */
function framePhase(url: string, functionName: string): Phase | undefined {
  if (url === '' && functionName === '(garbage collector)') return 'garbage collector';
  if (url.startsWith('node:internal/modules') || url.startsWith('node:internal/bootstrap')) return 'start-up (modules, config)';
  if (/node_modules\/(pino|sonic-boom|fast-redact|@pinojs|pino-std-serializers|fast-safe-stringify|thread-stream)\//.test(url)) return 'logging';
  if (/node_modules\/prom-client\//.test(url)) return 'metrics';
  if (/node_modules\/(mailauth|tldts|better-sqlite3|ioredis|punycode|ipaddr\.js)\//.test(url)) return 'checks (pipeline, DNS, store, spam)';
  if (/node_modules\/(zod|yaml|commander)\//.test(url)) return 'start-up (modules, config)';
  const m = /\/(?:dist|src)\/(.+)\.[jt]s$/.exec(url);
  if (!m || url.includes('node_modules')) return undefined;
  const f = m[1]!;
  if (/^observe\/(log|maillog|events|postfix-format)$/.test(f)) return 'logging';
  if (/^observe\//.test(f)) return 'metrics';
  if (/^(queue\/|core\/raw-file$|core\/ids$)/.test(f)) return 'spool write + fsync';
  if (/^(delivery\/|app\/(delivery|local-delivery)$)/.test(f)) return 'delivery (Maildir)';
  if (/^(checks|pipeline|spam|store|directory|policyd)\//.test(f) || /^core\/(dns|spf)/.test(f)) return 'checks (pipeline, DNS, store, spam)';
  if (/^(config\/|app\/compose$|main$|shells\/)/.test(f)) return 'start-up (modules, config)';
  if (/^(ingress\/smtp\/framing|core\/line-endings|core\/header-block|ingress\/content|ingress\/received|ingress\/forward-junk)$/.test(f)) return 'DATA (framing, headers, Received)';
  if (/^ingress\/smtp\/tls$|^ingress\/selfsigned$/.test(f)) return 'EHLO / TLS';
  if (/^(ingress\/listener|ingress\/proxy|ingress\/proxy-header|core\/net|app\/sessions|app\/acceptors)$/.test(f)) return 'accept + greeting';
  if (f === 'ingress/smtp/connection') return CONNECTION_PHASE.get(functionName) ?? 'SMTP commands (MAIL, RCPT, QUIT, replies)';
  if (f === 'ingress/session') {
    if (functionName === 'connect') return 'accept + greeting';
    if (functionName === 'helo' || functionName === 'ehlo') return 'EHLO / TLS';
    if (functionName === 'data' || functionName === 'end') return 'DATA (framing, headers, Received)';
    return 'SMTP commands (MAIL, RCPT, QUIT, replies)';
  }
  if (/^ingress\//.test(f)) return 'SMTP commands (MAIL, RCPT, QUIT, replies)';
  return undefined;
}

/** Busy CPU time (ms) of the profiles in `dir` by phase of a message; idle and "(program)" left out. */
export function phaseTimes(dir: string): Map<Phase, number> {
  const out = new Map<Phase, number>(PHASES.map((p) => [p, 0]));
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
    const { prof, byId, parent, interval } = readProfile(path.join(dir, f));
    const memo = new Map<number, Phase | null>();
    const phaseOf = (id: number): Phase | null => {
      const known = memo.get(id);
      if (known !== undefined) return known;
      const { url, functionName } = byId.get(id)!.callFrame;
      if (url === '' && (functionName === '(idle)' || functionName === '(program)' || functionName === '(root)')) return null;
      const own = framePhase(url, functionName);
      const up = parent.get(id);
      const p = own ?? (up === undefined ? 'other (no Mailward frame)' : (phaseOf(up) ?? 'other (no Mailward frame)'));
      memo.set(id, p);
      return p;
    };
    for (const id of prof.samples) {
      const p = phaseOf(id);
      if (p) out.set(p, out.get(p)! + interval);
    }
  }
  return out;
}

/** The phase table: ms per message (when `messages` is known) and share of busy time. */
export function phaseTable(dir: string, messages?: number): string {
  const t = phaseTimes(dir);
  const busy = [...t.values()].reduce((a, b) => a + b, 0);
  const perMessage = [...t].filter(([p]) => p !== 'start-up (modules, config)').reduce((a, [, v]) => a + v, 0);
  const lines = ['| phase | CPU (ms) | ms per message | share of busy time |', '|---|---:|---:|---:|'];
  for (const p of PHASES) {
    const ms = t.get(p)!;
    const per = messages && p !== 'start-up (modules, config)' ? (ms / messages).toFixed(3) : '–';
    lines.push(`| ${p} | ${ms.toFixed(0)} | ${per} | ${busy > 0 ? ((100 * ms) / busy).toFixed(1) : '0'} % |`);
  }
  lines.push(`| **all but start-up** | ${perMessage.toFixed(0)} | ${messages ? (perMessage / messages).toFixed(3) : '–'} | |`);
  return lines.join('\n');
}

// `node --import tsx bench/smtp/profile.ts DIR` summarises profiles written earlier.
if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node --import tsx bench/smtp/profile.ts <folder with .cpuprofile files> [messages profiled]\n');
    process.exitCode = 2;
  } else {
    const messages = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
    process.stdout.write(`## By phase of a message\n\n${phaseTable(dir, messages)}\n\n${summarizeProfile(dir)}\n`);
  }
}
