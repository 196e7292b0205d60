// Opens the directory's SQLite file: creates it private (it holds password hashes), turns on WAL so
// the server reads while the CLI writes, and brings the schema up to date.
// The schema version lives in PRAGMA user_version.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export const SCHEMA_VERSION = 2;

// Addresses are stored in canonical form (see keys.ts); an alias whose address is "@domain" is
// the catch-all of that domain. Alias targets are a JSON array of addresses.
const SCHEMA_V1 = `
CREATE TABLE IF NOT EXISTS users (
  address  TEXT PRIMARY KEY,
  password TEXT NOT NULL,
  created  INTEGER NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS aliases (
  address TEXT PRIMARY KEY,
  targets TEXT NOT NULL,
  created INTEGER NOT NULL
) STRICT;
`;

// v2: when each password was set (doctor names old ones; existing users count from `created`)
// and the last successful login (doctor names logins unused for long: the seed's incident was a
// forgotten account's stolen password).
const SCHEMA_V2 = `
ALTER TABLE users ADD COLUMN password_set INTEGER NOT NULL DEFAULT 0;
UPDATE users SET password_set = created;
ALTER TABLE users ADD COLUMN last_login INTEGER;
`;

/** How long a statement waits for another process's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

export function openDatabase(path: string): Database.Database {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Create the file with mode 0600 before SQLite does (it would use 0644); SQLite gives the
    // -wal and -shm files the same mode as the database.
    closeSync(openSync(path, 'a', 0o600));
  }
  const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // WAL: readers never block the writer and see each commit at their next statement, so a
    // user added by the CLI is visible to the running server at once, without a cache.
    db.pragma('journal_mode = WAL');
    migrate(db, path);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function migrate(db: Database.Database, path: string): void {
  // IMMEDIATE takes the write lock first, so two processes starting together do not both migrate.
  db.transaction(() => {
    const version = Number(db.pragma('user_version', { simple: true }));
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `directory ${path} has schema version ${version}, newer than this Mailward knows (${SCHEMA_VERSION}); upgrade Mailward or point the directory setting at another file`,
      );
    }
    if (version < 1) db.exec(SCHEMA_V1);
    if (version < 2) db.exec(SCHEMA_V2);
    if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
