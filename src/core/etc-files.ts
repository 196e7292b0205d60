// Reads the flat account files (/etc/passwd, /etc/group): the Maildir owner, the sendmail
// caller's name and policyd's socket group are looked up in them, and nothing else may read
// them differently. (Dropping privileges asks NSS through getent instead: app/privileges.ts.)
import { readFileSync } from 'node:fs';

/**
 * The colon-separated fields of the first line of `file` whose field number `field` (0: name,
 * 2: uid or gid) is `value` and that `accept` takes; undefined when there is none or the file
 * cannot be read. The file is read at each call: users and groups come and go.
 */
export function etcEntry(file: string, field: number, value: string, accept: (fields: string[]) => boolean = () => true): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[field] === value && accept(f)) return f;
  }
  return undefined;
}
