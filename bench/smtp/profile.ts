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

export function summarizeProfile(dir: string, top = 25): string {
  const selfMs = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  let totalMs = 0;
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) return `no .cpuprofile in ${dir} (did the server exit cleanly?)`;
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const byOurFile = new Map<string, number>();
  for (const f of files) {
    const prof = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as CpuProfile;
    byId.clear();
    selfMs.clear();
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

// `node --import tsx bench/smtp/profile.ts DIR` summarises profiles written earlier.
if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node --import tsx bench/smtp/profile.ts <folder with .cpuprofile files>\n');
    process.exitCode = 2;
  } else {
    process.stdout.write(`${summarizeProfile(dir)}\n`);
  }
}
