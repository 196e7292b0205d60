// The admin bearer token: read once from the file the config names, checked on every request in
// constant time (RFC 6750 §2.1 Authorization: Bearer). The token never reaches a log line.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

export const MIN_TOKEN_LENGTH = 16;

export class AdminTokenError extends Error {
  constructor(
    readonly setting: string,
    message: string,
    readonly fix: string,
  ) {
    super(`${setting}: ${message}. Fix: ${fix}`);
    this.name = 'AdminTokenError';
  }
}

export interface LoadedToken {
  /** Whether group or others may read the file (worth a warning). */
  readonly readableByOthers: boolean;
  check(header: string | undefined): boolean;
}

export function loadToken(file: string): LoadedToken {
  let text: string;
  let mode: number;
  try {
    text = readFileSync(file, 'utf8');
    mode = statSync(file).mode;
  } catch (err) {
    throw new AdminTokenError('admin.tokenFile', `cannot read ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, `make it: head -c 32 /dev/urandom | base64 > ${file}; chmod 600 ${file}`);
  }
  const token = text.replace(/\r?\n$/, '');
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new AdminTokenError('admin.tokenFile', `${JSON.stringify(file)} must hold one token of at least ${MIN_TOKEN_LENGTH} characters without spaces`, `make one: head -c 32 /dev/urandom | base64 > ${file}`);
  }
  const want = createHash('sha256').update(token).digest();
  return {
    readableByOthers: (mode & 0o077) !== 0,
    check(header) {
      const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
      if (!m) return false;
      // Hashing first gives equal lengths, so the comparison time says nothing about the token.
      return timingSafeEqual(createHash('sha256').update(m[1]!).digest(), want);
    },
  };
}
