// What must hold on this machine before the server can run, checked the same way by `serve`
// (app/compose.ts, before it opens anything) and by `check-config` (without creating anything):
// a dataDir that is, or can be created as, a writable folder, and the spool, mail and dkim
// folders under it; the TLS certificate and key (readable, and a pair); the smarthost password
// and CA files; the DKIM keys. Every problem is a ConfigError naming the setting, the value and
// the fix — never a raw EACCES/EEXIST/ENOTDIR from deep inside the start-up.
import { accessSync, constants, mkdirSync, readFileSync, statSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import type { Config } from '../config/load.ts';
import { ConfigError, type ConfigProblem } from '../config/errors.ts';
import type { Logger } from '../observe/log.ts';
import { silentLogger } from '../observe/log.ts';
import { readConfiguredPair } from './sessions.ts';
import { checkSmarthostFiles, loadDkimKeys } from './delivery.ts';

const code = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? String(err);

function whoAmI(): string {
  return typeof process.getuid === 'function' ? `uid ${process.getuid()}` : 'this user';
}

/** The folders under dataDir the server writes to (created by their owners when missing). */
export function dataFolders(config: Config): Array<{ readonly what: string; readonly dir: string }> {
  return [
    { what: 'dataDir', dir: config.dataDir },
    { what: 'the spool folder', dir: config.paths.spool },
    { what: 'the mailbox folder', dir: config.paths.mail },
    { what: 'the DKIM key folder', dir: path.join(config.dataDir, 'dkim') },
  ];
}

/** A problem with `dir` (an existing path, or the nearest existing folder above a missing one), or undefined. */
function folderProblem(what: string, dir: string): ConfigProblem | undefined {
  const problem = (message: string, fix: string): ConfigProblem => ({ path: 'dataDir', message: what === 'dataDir' ? message : `${what} ${message}`, fix });
  let missing = false;
  let at = dir;
  for (;;) {
    try {
      if (!statSync(at).isDirectory()) {
        if (at === dir) return problem(`${JSON.stringify(dir)} is a file, not a folder`, `point dataDir at a folder (it is created when missing), or move that file away`);
        return problem(`${JSON.stringify(dir)} cannot be created: ${JSON.stringify(at)} is a file, not a folder`, 'point dataDir at a folder whose parents are folders, or move that file away');
      }
      break;
    } catch (err) {
      const c = code(err);
      if (c === 'ENOTDIR') {
        // Some parent is a file: find it for the message.
        at = path.dirname(at);
        continue;
      }
      if (c !== 'ENOENT') return problem(`${JSON.stringify(dir)} cannot be read (${c})`, `give ${whoAmI()} access to it, or point dataDir elsewhere`);
      missing = true;
      const up = path.dirname(at);
      if (up === at) return problem(`${JSON.stringify(dir)} cannot be created (${c})`, 'point dataDir at a folder on a mounted file system');
      at = up;
    }
  }
  try {
    accessSync(at, constants.W_OK | constants.X_OK);
  } catch (err) {
    const c = code(err);
    const how = c === 'EROFS' ? 'is on a read-only file system' : `is not writable by ${whoAmI()} (${c})`;
    if (missing) return problem(`${JSON.stringify(dir)} cannot be created: its parent ${JSON.stringify(at)} ${how}`, `create ${dir} and give ${whoAmI()} write access to it, or point dataDir at a writable folder`);
    return problem(`${JSON.stringify(dir)} ${how}`, `give ${whoAmI()} write access to it (chown/chmod), or point dataDir at a writable folder`);
  }
  return undefined;
}

/** Problems with dataDir and the folders under it; nothing is created. */
export function dataDirProblems(config: Config): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const { what, dir } of dataFolders(config)) {
    const p = folderProblem(what, dir);
    if (p) {
      out.push(p);
      if (what === 'dataDir') break; // the folders under it say the same again
    }
  }
  return out;
}

/**
 * For `serve`: creates dataDir (0750) when it is missing, after checking that it and the folders
 * under it can be used. Throws ConfigError naming dataDir.
 */
export function prepareDataDir(config: Config): void {
  const problems = dataDirProblems(config);
  if (problems.length > 0) throw new ConfigError(config.source, problems);
  try {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o750 });
  } catch (err) {
    throw new ConfigError(config.source, [{ path: 'dataDir', message: `${JSON.stringify(config.dataDir)} cannot be created (${code(err)})`, fix: `create it and give ${whoAmI()} write access to it, or point dataDir at a writable folder` }]);
  }
}

/**
 * For `check-config`: everything serve checks before it opens a listener, without creating or
 * starting anything. Throws one ConfigError listing every problem found.
 */
export function preflight(config: Config, log: Logger = silentLogger()): void {
  const problems = dataDirProblems(config);
  const collect = (fn: () => unknown): void => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
    }
  };
  // Configured certificate and key: read and paired now (the self-signed pair is made at start).
  if (config.tls.cert && config.tls.key) collect(() => readConfiguredPair(config));
  const ca = config.tls.acme?.directoryCa;
  if (ca) collect(() => readableCa(config, ca));
  collect(() => checkSmarthostFiles(config, log));
  collect(() => loadDkimKeys(config, log));
  if (problems.length > 0) throw new ConfigError(config.source, problems);
}

/** tls.acme.directoryCa must be a PEM certificate the server can read. */
function readableCa(config: Config, file: string): void {
  try {
    new X509Certificate(readFileSync(file));
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
    throw new ConfigError(config.source, [{ path: 'tls.acme.directoryCa', message: `cannot use ${JSON.stringify(file)} as the CA of the ACME directory: ${why}`, fix: 'point it at the PEM certificate of the CA that signs your ACME server\'s HTTPS certificate, or remove it for a public CA' }]);
  }
}
