// Installs what the SMTP benchmark needs when it is missing: Debian's postfix package (Postfix
// itself, and the load generator smtp-source and the sink smtp-sink), Haraka 3 from npm into a
// folder outside the repository, and a build of Mailward as users run it (tsc output, not tsx).
import { existsSync, mkdirSync, copyFileSync, symlinkSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from './procs.ts';

export const HARAKA_PREFIX = process.env.BENCH_HARAKA_PREFIX ?? '/tmp/mailward-bench-haraka';
export const HARAKA_VERSION = '3';

const onPath = async (cmd: string): Promise<boolean> => run('sh', ['-c', `command -v ${cmd}`]).then(() => true, () => false);

/** apt-get with retries: another apt-get or dpkg may hold the lock for a while. */
async function aptGet(args: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await run('apt-get', args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      return;
    } catch (err) {
      const text = String(err);
      if (attempt < 30 && /lock|Could not get lock|dpkg was interrupted/i.test(text)) {
        await sleep(5000);
        continue;
      }
      throw err;
    }
  }
}

/** Postfix, smtp-source and smtp-sink, from Debian's postfix package. */
export async function ensurePostfix(log: (s: string) => void): Promise<void> {
  if ((await onPath('smtp-source')) && (await onPath('smtp-sink')) && existsSync('/usr/sbin/postfix')) return;
  if (process.getuid?.() !== 0) throw new Error('postfix (with smtp-source and smtp-sink) is missing; install it with: sudo apt-get install postfix');
  log('installing Debian package postfix (brings smtp-source and smtp-sink)');
  await aptGet(['update', '-qq']);
  await aptGet(['install', '-y', '-qq', '--no-install-recommends', 'postfix']);
}

/** Haraka 3 into HARAKA_PREFIX (outside the repository: it is a peer, not a dependency). */
export async function ensureHaraka(log: (s: string) => void): Promise<string> {
  const dir = path.join(HARAKA_PREFIX, 'node_modules', 'Haraka');
  if (!existsSync(path.join(dir, 'haraka.js'))) {
    log(`installing Haraka@${HARAKA_VERSION} from npm into ${HARAKA_PREFIX}`);
    mkdirSync(HARAKA_PREFIX, { recursive: true });
    await run('npm', ['install', '--prefix', HARAKA_PREFIX, '--no-audit', '--no-fund', '--loglevel=error', `Haraka@${HARAKA_VERSION}`]);
  }
  return dir;
}

/**
 * Compiles Mailward with tsconfig.build.json into `outRoot`/dist, next to a copy of package.json
 * (for "type": "module") and a link to the repository's node_modules, so the shared checkout's
 * dist/ is left alone. Type errors elsewhere in a working tree do not stop tsc from emitting.
 */
export async function buildMailward(repo: string, outRoot: string, log: (s: string) => void): Promise<string> {
  rmSync(outRoot, { recursive: true, force: true });
  mkdirSync(outRoot, { recursive: true });
  copyFileSync(path.join(repo, 'package.json'), path.join(outRoot, 'package.json'));
  symlinkSync(path.join(repo, 'node_modules'), path.join(outRoot, 'node_modules'));
  const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    await run(process.execPath, [tsc, '-p', path.join(repo, 'tsconfig.build.json'), '--outDir', path.join(outRoot, 'dist'), '--sourceMap', 'false'], { cwd: repo });
  } catch (err) {
    log(`warning: tsc reported errors (emitted anyway): ${String(err).split('\n').slice(0, 4).join(' | ')}`);
  }
  const main = path.join(outRoot, 'dist', 'main.js');
  if (!existsSync(main)) throw new Error(`the Mailward build produced no ${main}`);
  return main;
}
