// Opens the directory of local mailboxes and aliases for the configured domains. The server and
// the CLI (`mailward user add`, `alias add`) use the same SQLite file at the same time.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/load.ts';
import { Directory } from '../directory/directory.ts';

export type { Directory };

export function openDirectory(config: Config): Directory {
  mkdirSync(path.dirname(config.paths.directory), { recursive: true });
  return Directory.open(config.paths.directory, {
    domains: [...config.domains],
    ...(config.recipientDelimiter ? { recipientDelimiter: config.recipientDelimiter } : {}),
  });
}
