// The process logger: pino, JSON lines by default; a readable colourised form when asked for
// (or when stdout is a terminal and no format was chosen). Secrets are redacted by path.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { postfixDestination } from './postfix-format.ts';

export type { Logger };

export interface LogOptions {
  readonly level: LevelWithSilent;
  /** 'json' always; 'pretty' always; 'auto': pretty on a terminal, JSON otherwise. */
  readonly format: 'json' | 'pretty' | 'auto' | 'postfix';
  /** Write to this file descriptor (default 1, stdout). */
  readonly fd?: number;
}

// Never let a password or AUTH payload reach a log line, whatever object carries it.
const REDACT = ['password', '*.password', 'pass', '*.pass', 'auth.credentials', 'authData'];

/**
 * The logger of an acceptor process: the same level and redaction, its lines written to `dest`
 * (which hands them to the primary, so one process owns the log's destination).
 */
export function createForwardingLogger(level: string, dest: { write(line: string): void }): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } }, dest);
}

/** Writes lines that are already formatted (an acceptor's) to `log`'s own destination. */
export function writeRawLines(log: Logger, text: string): void {
  const dest = (log as unknown as Record<symbol, { write(s: string): void } | undefined>)[pino.symbols.streamSym];
  dest?.write(text);
}

export function createLogger(opts: LogOptions): Logger {
  const fd = opts.fd ?? 1;
  const pretty = opts.format === 'pretty' || (opts.format === 'auto' && fd === 1 && process.stdout.isTTY);
  const base = { level: opts.level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } };
  if (pretty) {
    return pino(base, pino.transport({ target: 'pino-pretty', options: { destination: fd, colorize: true, translateTime: 'SYS:standard', ignore: 'pid,hostname' } }));
  }
  if (opts.format === 'postfix') return pino(base, postfixDestination(pino.destination({ dest: fd, sync: false })));
  return pino(base, pino.destination({ dest: fd, sync: false }));
}

/** A logger that drops everything (for CLI commands that print their own output). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
