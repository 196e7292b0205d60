// The writing end of the spool: starts a message file in incoming/ and commits it into its area.
// The Spool uses it for its own commits; an acceptor process (app/acceptors.ts) opens one alone
// to write the mail its sessions accept — no lock, no catalog, no delivery — and tells the process
// that owns the spool of every commit, which schedules it as if it had written it itself.
import { join, resolve } from 'node:path';
import { isQueueId, newQueueId } from '../core/ids.ts';
import { envelopeProblem, type Envelope, type NewEnvelope } from './envelope.ts';
import { DirSyncer } from './dirsync.ts';
import { encodeHeader } from './format.ts';
import { SpoolWriter, type CommittedBytes } from './writer.ts';
import type { Logger } from '../observe/log.ts';

/**
 * One sub-folder per base32hex digit: 400,000 messages are ~12,500 entries per folder. The folder
 * is the 8th id character, the arrival time in 32 ms steps modulo 32: messages that arrive together
 * share a folder, so their folder fsyncs coalesce, and a queue filled over more than about a second
 * spreads evenly over all 32 folders.
 */
export const BUCKETS = '0123456789abcdefghijklmnopqrstuv';
export const bucketOf = (id: string): string => id[7]!;
/** The folders holding message files: scheduled ones, those an operator put on hold, and spam
 * kept in quarantine (`mailward quarantine`). Only queue/ is ever scheduled. */
export type SpoolArea = 'queue' | 'hold' | 'quarantine';
export const SPOOL_AREAS: readonly SpoolArea[] = ['queue', 'hold', 'quarantine'];

/** Where message `id` lives in `area` of the spool at `root`. */
export function spoolPath(root: string, id: string, area: SpoolArea = 'queue'): string {
  if (!isQueueId(id)) throw new Error(`not a queue id: ${JSON.stringify(id)}`);
  return join(root, area, bucketOf(id), id);
}

/** The folders a commit fsyncs: every bucket of every area. */
export function bucketDirs(root: string): string[] {
  return SPOOL_AREAS.flatMap((area) => [...BUCKETS].map((b) => join(root, area, b)));
}

/** Bytes of a message kept in memory before it spills to its file in incoming/. */
export const DEFAULT_MEMORY_LIMIT = 256 * 1024;

export type CommitListener = (env: Envelope, area: 'queue' | 'quarantine', written?: CommittedBytes) => void;

export interface IntakeSettings {
  readonly root: string;
  readonly syncer: DirSyncer;
  readonly fsync: boolean;
  readonly memoryLimit: number;
  readonly assertOpen: () => void;
  readonly committed: CommitListener;
  /** Told at debug level of each spool fsync as it completes. */
  readonly log?: Logger;
}

/** Starts a message: write its bytes (the Received header first), then commit or abort. */
export function beginMessage(s: IntakeSettings, env: NewEnvelope): SpoolWriter {
  s.assertOpen();
  const receivedAt = env.receivedAt ?? Date.now();
  const envelope = { ...env, id: env.id ?? newQueueId(receivedAt), receivedAt };
  // Refuse now what would be unreadable later: a message acknowledged but unreadable is lost.
  const problem = envelopeProblem(envelope);
  if (problem) throw new Error(`cannot queue message ${envelope.id}: ${problem}`);
  return new SpoolWriter({
    envelope,
    header: encodeHeader(envelope),
    tmpPath: join(s.root, 'incoming', envelope.id),
    pathFor: (area: SpoolArea) => spoolPath(s.root, envelope.id, area),
    syncer: s.syncer,
    fsync: s.fsync,
    memoryLimit: s.memoryLimit,
    assertOpen: s.assertOpen,
    committed: s.committed,
    ...(s.log ? { log: s.log } : {}),
  });
}

export interface SpoolIntakeOptions {
  readonly fsync?: boolean;
  readonly memoryLimit?: number;
  readonly groupCommit?: boolean;
  /** Told of every durable commit (the acceptor forwards it to the spool's owner). */
  readonly committed: CommitListener;
}

/** The spool's writing end alone, for a process that does not own the spool (it must exist). */
export class SpoolIntake {
  readonly #settings: IntakeSettings;
  #closed = false;

  constructor(dir: string, opts: SpoolIntakeOptions) {
    const fsync = opts.fsync ?? true;
    const root = resolve(dir);
    const syncer = new DirSyncer({ enabled: fsync, coalesce: opts.groupCommit ?? true });
    syncer.keepOpen(bucketDirs(root));
    this.#settings = {
      root,
      syncer,
      fsync,
      memoryLimit: opts.memoryLimit ?? DEFAULT_MEMORY_LIMIT,
      assertOpen: () => {
        if (this.#closed) throw new Error(`spool intake ${root} is closed`);
      },
      committed: opts.committed,
    };
  }

  begin(env: NewEnvelope): SpoolWriter {
    return beginMessage(this.#settings, env);
  }

  /** Stops new messages; writers already committing finish first (their folder fsyncs). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#settings.syncer.close();
  }
}
