// Reads training input: single message files, folders of them (recursively), Maildirs (cur/
// and new/, never tmp/) and mbox files (RFC 4155, mboxrd quoting undone), yielding one raw
// message at a time so that a large mailbox is never held in memory whole.
import { createReadStream } from 'node:fs';
import { open, readFile as readFileBytes, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface SourceMessage {
  /** Where it came from: a file path, or "path#n" for the n-th message of an mbox (from 1). */
  readonly source: string;
  readonly raw: Buffer;
}

export interface ReadOptions {
  /** Messages larger than this are skipped (reported through onSkip). Default 32 MiB. */
  readonly maxBytes?: number;
  /** Told of what was not read, and why. */
  readonly onSkip?: (source: string, reason: string) => void;
  /** Only files whose inode changed (written, moved, flagged) at or after this time, ms since the
   * epoch; older files are passed over without being read (a timer's pass over a big mailbox). */
  readonly changedSince?: number;
}

/** True for a folder holding cur/, new/ and tmp/ (a Maildir, or a Maildir++ subfolder). */
export async function isMaildir(dir: string): Promise<boolean> {
  for (const sub of ['cur', 'new', 'tmp']) {
    try {
      if (!(await stat(join(dir, sub))).isDirectory()) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Every message under `path`. A Maildir yields cur/ and new/ only; its Maildir++ subfolders
 * (.Junk, .Sent …) are not entered — a folder meant as ham must not pull the Junk folder in —
 * so name each folder to learn. A plain folder is walked recursively, skipping dot-files. A file
 * whose first line is an mbox "From " line is read as an mbox, any other file as one message.
 */
export async function* readMessages(path: string, opts: ReadOptions = {}): AsyncGenerator<SourceMessage> {
  for await (const file of messageFiles(path)) yield* readFile(file, opts);
}

/** The files readMessages reads under `path`, in its order (each a message or an mbox). */
export async function* messageFiles(path: string): AsyncGenerator<string> {
  const st = await stat(path);
  if (!st.isDirectory()) {
    yield path;
    return;
  }
  if (await isMaildir(path)) {
    for (const sub of ['cur', 'new']) yield* folderFiles(join(path, sub), false);
    return;
  }
  yield* folderFiles(path, true);
}

async function* folderFiles(dir: string, recurse: boolean): AsyncGenerator<string> {
  const entries = await readdir(dir, { withFileTypes: true });
  // Sorted, so that progress output and "first N" runs are the same every time.
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!recurse) continue;
      if (await isMaildir(p)) for (const sub of ['cur', 'new']) yield* folderFiles(join(p, sub), false);
      else yield* folderFiles(p, true);
    } else if (e.isFile()) {
      yield p;
    }
  }
}

async function* readFile(path: string, opts: ReadOptions): AsyncGenerator<SourceMessage> {
  const maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
  const fh = await open(path, 'r');
  let head: Buffer;
  let size: number;
  try {
    const st = await fh.stat();
    if (opts.changedSince !== undefined && st.ctimeMs < opts.changedSince) return;
    size = st.size;
    head = Buffer.alloc(Math.min(size, 5));
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  if (size === 0) {
    opts.onSkip?.(path, 'empty file');
    return;
  }
  // A single saved message with a "From " line is an mbox of one: both read the same.
  if (head.toString('latin1') === 'From ') {
    yield* readMbox(path, opts);
    return;
  }
  if (size > maxBytes) {
    opts.onSkip?.(path, `larger than ${maxBytes} bytes`);
    return;
  }
  yield { source: path, raw: await readFileBytes(path) };
}

// RFC 4155 §2: a message starts at a line "From " after an empty line (or at the file's start).
/** Messages of an mbox file, streamed. */
export async function* readMbox(path: string, opts: ReadOptions = {}): AsyncGenerator<SourceMessage> {
  const maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
  let n = 0;
  let lines: Buffer[] = [];
  let bytes = 0;
  let tooBig = false;
  let prevBlank = true;
  let carry: Buffer | undefined;
  const finish = (): SourceMessage | undefined => {
    if (lines.length === 0) return undefined;
    n++;
    const source = `${path}#${n}`;
    // The empty line before the next "From " belongs to the mbox, not to the message.
    const last = lines.at(-1);
    if (last && (last.length === 1 || (last.length === 2 && last[0] === 13))) lines.pop();
    const msg = tooBig ? undefined : Buffer.concat(lines);
    lines = [];
    bytes = 0;
    const wasTooBig = tooBig;
    tooBig = false;
    if (wasTooBig) {
      opts.onSkip?.(source, `larger than ${maxBytes} bytes`);
      return undefined;
    }
    return { source, raw: msg! };
  };
  const onLine = (line: Buffer): SourceMessage | undefined => {
    let out: SourceMessage | undefined;
    if (prevBlank && line.length >= 5 && line.toString('latin1', 0, 5) === 'From ') {
      out = finish();
      lines.push(line); // kept: the parser drops it, and it helps nothing to strip it here
      bytes = line.length;
      prevBlank = false;
      return out;
    }
    // mboxrd: ">From ", ">>From " … lose one ">" (RFC 4155 §2 describes the quoting).
    let l = line;
    if (l[0] === 0x3e && /^>+From /.test(l.toString('latin1', 0, Math.min(l.length, 64)))) l = l.subarray(1);
    if (!tooBig) {
      bytes += l.length;
      if (bytes > maxBytes) {
        tooBig = true;
        lines = [Buffer.alloc(0)];
      } else lines.push(l);
    }
    prevBlank = line.length === 1 || (line.length === 2 && line[0] === 13);
    return out;
  };
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let buf = carry ? Buffer.concat([carry, chunk]) : chunk;
    carry = undefined;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      const m = onLine(buf.subarray(start, nl + 1));
      if (m) yield m;
      start = nl + 1;
    }
    if (start < buf.length) carry = Buffer.from(buf.subarray(start));
    buf = Buffer.alloc(0);
  }
  if (carry) {
    const m = onLine(carry);
    if (m) yield m;
  }
  const m = finish();
  if (m) yield m;
}
