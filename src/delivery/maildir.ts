// Local delivery into Maildir (root/<domain>/<local>/Maildir/{tmp,new,cur}, or a path template such
// as /var/vmail/%d/%n/Maildir), the way Dovecot reads it: write to tmp/, fsync, rename into new/,
// fsync new/; folders and files owned by the configured user and group (vmail). The file name is fixed by queue id and
// recipient index, so a delivery repeated after a crash finds its earlier copy instead of adding one.
// A message whose envelope names a folder (spam: "Junk") goes to that Maildir++ folder instead.
import { access, chown, mkdir, open, opendir, rename, unlink } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import type { Logger } from '../observe/log.ts';
import { isFolderName, type Envelope } from '../queue/envelope.ts';
import { DirSyncer } from '../queue/dirsync.ts';
import { writeAll } from '../queue/writer.ts';
import { perm, reply, replyText, temp } from '../core/reply.ts';
import { RawFile } from '../core/raw-file.ts';
import { expandMaildirTemplate, templatePrefix, type MaildirTemplate } from '../core/maildir-template.ts';
import type { DeliverableMessage, RecipientOutcome, Transport } from './transport.ts';

/** Bytes gathered before a writev while a message is copied into its Maildir file. */
const WRITE_BATCH = 256 * 1024;

export class MailboxPathError extends Error {
  constructor(
    readonly mailbox: string,
    readonly reason: string,
  ) {
    super(`mailbox ${JSON.stringify(mailbox)} cannot be a Maildir path: ${reason}`);
    this.name = 'MailboxPathError';
  }
}

// RFC 5322 §3.2.3 atext without "/", plus "." and, for SMTPUTF8 (RFC 6531), letters and digits
// of any script. Anything else (quotes, spaces, "\", NUL, controls) is refused, not escaped.
const LOCAL_RE = /^[\p{L}\p{M}\p{N}!#$%&'*+\-=?^_`{|}~.]+$/u;
const DOMAIN_RE = /^[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?(?:\.[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?)*$/u;

export interface MaildirLayout {
  /** An absolute path template (%u, %n, %d); unset: root/%d/%n/Maildir. */
  readonly template?: MaildirTemplate;
  /** 'all' (default): the whole address is lower-cased; 'domain': only the domain, the local part keeps its case. */
  readonly lowercase?: 'all' | 'domain';
}

/**
 * The Maildir folder of a local mailbox: root/<domain>/<local>/Maildir (or the layout's template),
 * lower-cased. Throws MailboxPathError for anything that could leave `root` (or the template's
 * fixed start) or name a hidden or odd folder.
 */
export function maildirPath(root: string, mailbox: string, layout: MaildirLayout = {}): string {
  const norm = mailbox.normalize('NFC');
  const at0 = norm.lastIndexOf('@');
  // Domains are case-insensitive (RFC 5321 §2.4); local parts are the receiver's to decide.
  const addr = layout.lowercase === 'domain' ? norm.slice(0, at0 + 1) + norm.slice(at0 + 1).toLowerCase() : norm.toLowerCase();
  const at = addr.lastIndexOf('@');
  if (at <= 0 || at === addr.length - 1) throw new MailboxPathError(mailbox, 'not local@domain');
  const local = addr.slice(0, at);
  const domain = addr.slice(at + 1);
  // RFC 5321 §4.5.3.1.1/§4.5.3.1.2 limits.
  if (local.length > 64 || domain.length > 255) throw new MailboxPathError(mailbox, 'too long');
  if (!LOCAL_RE.test(local)) throw new MailboxPathError(mailbox, 'local part has characters not allowed in a folder name');
  if (local.startsWith('.') || local.includes('..')) throw new MailboxPathError(mailbox, 'local part starts with "." or contains ".."');
  if (!DOMAIN_RE.test(domain)) throw new MailboxPathError(mailbox, 'domain is not a host name');
  if (layout.template) {
    const prefix = templatePrefix(layout.template);
    const path = resolve(expandMaildirTemplate(layout.template, local, domain));
    const base = resolve(prefix);
    if (!path.startsWith(base === sep ? sep : base + sep)) throw new MailboxPathError(mailbox, "path leaves the template's folder");
    return path;
  }
  const base = resolve(root);
  const path = join(base, domain, local, 'Maildir');
  if (!path.startsWith(base + sep)) throw new MailboxPathError(mailbox, 'path leaves the Maildir root');
  return path;
}

/**
 * Dovecot-style name "<secs>.M<usecs>Q<queue id>I<index>.<host>,S=<size>": unique per message
 * and recipient, and the same on every attempt (time is the arrival time, not the delivery time).
 */
export function maildirFileName(env: Envelope, index: number, host: string, size: number): string {
  const secs = Math.floor(env.receivedAt / 1000);
  const usecs = (env.receivedAt % 1000) * 1000;
  // Maildir convention: "/" and ":" in the host name are written as \057 and \072.
  const h = host.replace(/\//g, '\\057').replace(/:/g, '\\072');
  return `${secs}.M${usecs}Q${env.id}I${index}.${h},S=${size}`;
}

export interface MaildirOptions {
  /** Folder holding <domain>/<local>/Maildir. */
  readonly root: string;
  /** Host name in file names (default: the system's). Keep it stable: it is part of the name checked after a crash. */
  readonly hostname?: string;
  /** fsync files and folders (default true). */
  readonly fsync?: boolean;
  /** Folder-fsync coalescer, shared with the spool to batch fsyncs of busy new/ folders. */
  readonly syncer?: DirSyncer;
  readonly log?: Logger;
  readonly dirMode?: number;
  readonly fileMode?: number;
  /** Path template and lower-casing (config delivery.local.maildir). */
  readonly layout?: MaildirLayout;
  /** Give every folder and file written to this uid and gid (the vmail user Dovecot reads as). */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

const ok = replyText(reply(250, '2.0.0', 'Delivered to mailbox'));
const okEarlier = replyText(reply(250, '2.0.0', 'Delivered to mailbox before a restart'));

export class MaildirTransport implements Transport {
  readonly #root: string;
  readonly #host: string;
  readonly #fsync: boolean;
  readonly #syncer: DirSyncer;
  readonly #log: Logger | undefined;
  readonly #dirMode: number;
  readonly #fileMode: number;
  readonly #layout: MaildirLayout;
  readonly #owner: { readonly uid: number; readonly gid: number } | undefined;
  // Maildirs known to exist (creation includes fsyncing the new folders and their parents).
  readonly #ready = new Map<string, Promise<void>>();

  constructor(opts: MaildirOptions) {
    this.#root = resolve(opts.root);
    this.#host = opts.hostname ?? osHostname();
    this.#fsync = opts.fsync ?? true;
    this.#syncer = opts.syncer ?? new DirSyncer({ enabled: this.#fsync });
    this.#log = opts.log;
    this.#dirMode = opts.dirMode ?? 0o700;
    this.#fileMode = opts.fileMode ?? 0o600;
    this.#layout = opts.layout ?? {};
    this.#owner = opts.owner;
  }

  /** Hands a folder or file just made to the configured owner (needs root or CAP_CHOWN unless it is us). */
  async #own(path: string): Promise<void> {
    if (this.#owner) await chown(path, this.#owner.uid, this.#owner.gid);
  }

  async deliver(msg: DeliverableMessage, recipientIndexes: readonly number[]): Promise<RecipientOutcome[]> {
    const out: RecipientOutcome[] = [];
    for (const index of recipientIndexes) out.push(await this.#deliverOne(msg, index));
    return out;
  }

  async #deliverOne(msg: DeliverableMessage, index: number): Promise<RecipientOutcome> {
    const env = msg.envelope;
    const rcpt = env.recipients[index];
    if (!rcpt) return { index, outcome: 'permanent', reply: replyText(perm('5.1.1', 'No such recipient in this message')) };
    const mailbox = rcpt.mailbox ?? rcpt.address;
    let dir: string;
    // The Maildir++ sub-folder (<Maildir>/.<name>) when the envelope names one.
    let folder: string | undefined;
    try {
      // RFC 5321 §4.1.2 paths cannot hold CR, LF or NUL; refuse them rather than write a header from them.
      if (/[\r\n\0]/.test(env.mailFrom + mailbox)) throw new MailboxPathError(mailbox, 'control characters in the envelope');
      dir = maildirPath(this.#root, mailbox, this.#layout);
      if (env.folder !== undefined) {
        // Checked when the spool file was read; checked again here because it becomes a path.
        if (!isFolderName(env.folder)) throw new MailboxPathError(mailbox, `folder ${JSON.stringify(env.folder)} is not a plain folder name`);
        folder = join(dir, `.${env.folder}`);
      }
    } catch (err) {
      this.#log?.warn({ event: 'maildir-refused', queueId: env.id, mailbox, reason: (err as Error).message }, 'mailbox refused');
      return { index, outcome: 'permanent', reply: replyText(perm('5.1.3', 'Bad destination mailbox address')) };
    }
    // Return-Path (RFC 5321 §4.4) and Delivered-To, as Postfix's local delivery writes them.
    const head = Buffer.from(`Return-Path: <${env.mailFrom}>\r\nDelivered-To: ${mailbox}\r\n`, 'utf8');
    const size = head.length + env.size;
    const name = maildirFileName(env, index, this.#host, size);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#ensure(dir, false);
        if (folder !== undefined) await this.#ensure(folder, true);
        const target = folder ?? dir;
        if (msg.recovered && (await alreadyDelivered(target, name))) return { index, outcome: 'ok', reply: okEarlier };
        await this.#write(target, name, head, msg, size);
        return { index, outcome: 'ok', reply: folder === undefined ? ok : replyText(reply(250, '2.0.0', `Delivered to mailbox folder ${env.folder}`)) };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // The Maildir vanished after we created it (removed by hand): create it again, once.
        if (code === 'ENOENT' && attempt === 0) {
          this.#ready.delete(dir);
          if (folder !== undefined) this.#ready.delete(folder);
          continue;
        }
        this.#log?.error({ event: 'maildir-error', queueId: env.id, mailbox, path: dir, err }, 'maildir delivery failed');
        return { index, outcome: 'temporary', reply: failureReply(code) };
      }
    }
  }

  async #write(dir: string, name: string, head: Buffer, msg: DeliverableMessage, size: number): Promise<void> {
    const tmp = join(dir, 'tmp', name);
    const fh = await RawFile.open(tmp, 'w', this.#fileMode);
    let complete = false;
    try {
      // Chunks go out together, up to WRITE_BATCH at a time: a message held in memory is one
      // writev with its head, not one per piece.
      let pos = 0;
      let batch: Buffer[] = [head];
      let batched = head.length;
      for await (const chunk of msg.body()) {
        batch.push(chunk as Buffer);
        batched += (chunk as Buffer).length;
        if (batched < WRITE_BATCH) continue;
        pos = await writeAll(fh, batch, pos);
        batch = [];
        batched = 0;
      }
      if (batch.length > 0) pos = await writeAll(fh, batch, pos);
      if (pos !== size) throw new Error(`wrote ${pos} bytes to ${tmp}, expected ${size}`);
      await this.#own(tmp);
      if (this.#fsync) await fh.sync();
      complete = true;
    } finally {
      await fh.close();
      if (!complete) await unlink(tmp).catch(() => undefined);
    }
    try {
      await rename(tmp, join(dir, 'new', name));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await this.#syncer.sync(join(dir, 'new'));
  }

  /** Creates the Maildir (or, with `subfolder`, a Maildir++ folder inside one) once. */
  #ensure(dir: string, subfolder: boolean): Promise<void> {
    let p = this.#ready.get(dir);
    if (!p) {
      p = this.#create(dir, subfolder);
      this.#ready.set(dir, p);
      p.catch(() => this.#ready.delete(dir));
    }
    return p;
  }

  async #create(dir: string, subfolder: boolean): Promise<void> {
    const first = await mkdir(dir, { recursive: true, mode: this.#dirMode });
    let made = first !== undefined;
    if (first !== undefined && this.#owner) {
      // Every folder mkdir made, from the first down to the Maildir itself.
      const made_: string[] = [];
      for (let p = dir; ; p = dirname(p)) {
        made_.unshift(p);
        if (p === first || dirname(p) === p) break;
      }
      for (const p of made_) await this.#own(p);
    }
    for (const sub of ['tmp', 'new', 'cur']) {
      try {
        await mkdir(join(dir, sub), { mode: this.#dirMode });
        await this.#own(join(dir, sub));
        made = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    if (subfolder) {
      // Maildir++: an empty "maildirfolder" file marks a folder (Dovecot, Courier).
      try {
        await (await open(join(dir, 'maildirfolder'), 'wx', this.#fileMode)).close();
        await this.#own(join(dir, 'maildirfolder'));
        made = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    if (!made) return;
    // A new folder is durable only once its parent is fsync'd: from the parent of the first
    // folder created down to the Maildir itself.
    const stop = first === undefined ? dir : dirname(first);
    const chain = [dir];
    for (let p = dir; p !== stop && dirname(p) !== p; ) {
      p = dirname(p);
      chain.push(p);
    }
    for (const d of chain) await this.#syncer.sync(d);
  }
}

/**
 * Whether an earlier attempt already put this file into the Maildir: in new/, or in cur/ where the
 * mail reader moved it and added ":2,<flags>" (or Dovecot added ",W=<size>"). Only called for
 * recovered messages, because reading cur/ of a big mailbox is slow.
 */
async function alreadyDelivered(dir: string, name: string): Promise<boolean> {
  try {
    await access(join(dir, 'new', name));
    return true;
  } catch {
    // not in new/
  }
  for await (const e of await opendir(join(dir, 'cur'))) {
    if (e.name === name || e.name.startsWith(name + ':') || e.name.startsWith(name + ',')) return true;
  }
  return false;
}

function failureReply(code: string | undefined): string {
  // RFC 3463: X.2.2 mailbox full, X.3.1 mail system full.
  if (code === 'EDQUOT') return replyText(temp('4.2.2', 'Mailbox full', 452));
  if (code === 'ENOSPC') return replyText(temp('4.3.1', 'Insufficient system storage', 452));
  return replyText(temp('4.3.0', 'Local delivery failed, will retry', 451));
}
