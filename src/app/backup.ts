// `mailward backup <folder>`: a copy of dataDir taken while the server runs (docs/guide/backup.md).
// SQLite files (users and aliases, the state store) are copied with SQLite's online backup API,
// so each copy is one consistent snapshot even while the server writes; every other file (the
// spool, DKIM and SRS keys, the TLS pair, delivered Maildir mail) is copied as it is, with its
// mode. A spool file is whole once renamed into queue/, so the copy holds each acknowledged
// message whole; a delivery state appended during the copy may be missing (that recipient is
// retried). Left out: incoming/ (never acknowledged), the spool lock, sockets, SQLite's -wal/-shm,
// and the catalog snapshot (catalog.snap, its change logs): it would be of another moment than the
// files copied one by one, and the restored server rebuilds it from the files. The spool's marks
// (held.log, deleted.log) are copied after its folders, so a hold or delete made while the files
// were copied is in the copy too: a restore never releases mail held at backup time.
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, type Stats } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Config } from '../config/load.ts';
import { HOLDS_FILE } from '../queue/holds.ts';
import { JOURNAL_FILE } from '../queue/journal.ts';

export interface BackupResult {
  readonly databases: string[];
  readonly files: number;
  readonly bytes: number;
}

const SQLITE_SIDE_FILES = /-(wal|shm|journal)$/;
/** The catalog snapshot's files (queue/snapshot.ts): rebuilt from the spool's files at start. */
const CATALOG_SNAPSHOT = /^catalog\.(snap|snap\.tmp|changed\..*)$/;
/** The spool's mark journals (queue/journal.ts, queue/holds.ts): copied last in the spool. */
const SPOOL_MARKS = new Set([JOURNAL_FILE, HOLDS_FILE]);

/** Copies dataDir (and a state store kept outside it) into `dest`, which must not exist or be empty. */
export async function backupDataDir(config: Config, dest: string): Promise<BackupResult> {
  const target = path.resolve(dest);
  const dataDir = path.resolve(config.dataDir);
  if (target === dataDir || target.startsWith(dataDir + path.sep)) throw new Error(`backup folder ${target} is inside dataDir ${dataDir}; choose a folder elsewhere`);
  if (existsSync(target) && readdirSync(target).length > 0) throw new Error(`backup folder ${target} is not empty; give a new or empty folder`);
  // Private while it fills; it ends with dataDir's own mode (0750), so `cp -a` restores that.
  mkdirSync(target, { recursive: true, mode: 0o700 });
  const databases = [config.paths.directory, ...(config.store.backend === 'sqlite' ? [config.paths.store] : [])].filter((f) => existsSync(f));
  const skip = new Set([...databases, path.join(config.paths.spool, 'incoming'), path.join(config.paths.spool, 'lock')]);
  const spoolDir = path.resolve(config.paths.spool);
  let files = 0;
  let bytes = 0;
  const copyTree = (from: string, to: string, st: Stats): void => {
    mkdirSync(to, { recursive: true });
    chmodSync(to, st.mode & 0o7777);
    const inSpool = from === spoolDir;
    const names = readdirSync(from).filter((n) => !(inSpool && CATALOG_SNAPSHOT.test(n)));
    // The marks after the folders they name (sort is stable: the rest keep their order).
    if (inSpool) names.sort((a, b) => Number(SPOOL_MARKS.has(a)) - Number(SPOOL_MARKS.has(b)));
    for (const name of names) {
      const src = path.join(from, name);
      if (skip.has(src) || databases.some((d) => src.startsWith(d) && SQLITE_SIDE_FILES.test(src))) continue;
      let s: Stats;
      try {
        s = lstatSync(src);
      } catch {
        continue; // removed meanwhile (a delivered message): nothing to keep
      }
      const dst = path.join(to, name);
      if (s.isDirectory()) copyTree(src, dst, s);
      else if (s.isFile()) {
        try {
          copyFileSync(src, dst);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        chmodSync(dst, s.mode & 0o7777);
        files++;
        bytes += s.size;
      }
      // Sockets and links are left out: the server makes its sockets anew.
    }
  };
  copyTree(dataDir, target, lstatSync(dataDir));
  const copied: string[] = [];
  for (const db of databases) {
    // A store kept outside dataDir goes to the top of the backup under its own name.
    const rel = db.startsWith(dataDir + path.sep) ? path.relative(dataDir, db) : path.basename(db);
    const out = path.join(target, rel);
    mkdirSync(path.dirname(out), { recursive: true });
    const src = new Database(db, { fileMustExist: true, timeout: 5000 });
    try {
      await src.backup(out);
    } finally {
      src.close();
    }
    chmodSync(out, 0o600);
    copied.push(rel);
  }
  return { databases: copied, files, bytes };
}
