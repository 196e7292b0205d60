// A pino logger that keeps its JSON lines in memory, so tests can count what the store logged.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/observe/log.ts';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export function captureLog(): { log: Logger; lines: LogLine[]; count(msg: string): number } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  const log = pino({ level: 'debug' }, stream);
  return { log, lines, count: (msg) => lines.filter((l) => l.msg === msg).length };
}
