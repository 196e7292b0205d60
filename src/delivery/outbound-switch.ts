// "Stop all outbound": one operator switch, kept in dataDir/outbound.json so it survives a restart.
// While it is off, the remote transport answers every recipient with a pause: no connection is
// made, no attempt counted, the message stays queued (deferred) until the switch is on again,
// which tries the paused mail at once. Local delivery never passes through it. Set from the
// dashboard, `mailward outbound stop|start` (over the control socket, or this file when no server
// runs); every change is one log line naming who.
import { existsSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../observe/log.ts';
import type { RecipientOutcome, Transport } from './transport.ts';

export const OUTBOUND_FILE = 'outbound.json';

export interface OutboundState {
  readonly stopped: boolean;
  /** When it was last changed (ms), and by whom. */
  readonly since?: number;
  readonly by?: string;
  readonly reason?: string;
}

/** How long a paused recipient waits before the worker looks again (a start tries it at once). */
export const PAUSE_RECHECK_MS = 10 * 60_000;
/** RFC 3463 X.3.2: "system not accepting network messages" (here: not sending them). */
export const PAUSED_REPLY = '451 4.3.2 Outbound delivery stopped by the operator; queued until it is started again';

export const outboundStatePath = (dataDir: string): string => path.join(dataDir, OUTBOUND_FILE);

/** The persisted state; a missing file is "running". An unreadable one is "stopped": in doubt, send nothing. */
export function readOutboundState(dataDir: string): OutboundState {
  const file = outboundStatePath(dataDir);
  if (!existsSync(file)) return { stopped: false };
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<OutboundState>;
    if (typeof v.stopped !== 'boolean') throw new Error('no "stopped" field');
    return { stopped: v.stopped, ...(typeof v.since === 'number' ? { since: v.since } : {}), ...(typeof v.by === 'string' ? { by: v.by } : {}), ...(typeof v.reason === 'string' ? { reason: v.reason } : {}) };
  } catch (err) {
    return { stopped: true, reason: `${file} is unreadable (${String(err)}); fix or delete it, or run "mailward outbound start"` };
  }
}

/** Writes the state durably (temp file, fsync, rename). */
export async function writeOutboundState(dataDir: string, state: OutboundState): Promise<void> {
  const file = outboundStatePath(dataDir);
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(state)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

export interface OutboundSwitchOptions {
  readonly dataDir: string;
  readonly log: Logger;
  readonly clock?: () => number;
  /** Called on every change (the metric), and once at start with the persisted state. */
  readonly onChange?: (stopped: boolean) => void;
  /** Tries the paused mail now (the queue's flush), after a start. */
  readonly flush?: () => Promise<number>;
}

export class OutboundSwitch {
  #state: OutboundState;
  readonly #o: OutboundSwitchOptions;
  #changing: Promise<unknown> = Promise.resolve();

  constructor(o: OutboundSwitchOptions) {
    this.#o = o;
    this.#state = readOutboundState(o.dataDir);
    o.onChange?.(this.#state.stopped);
    if (this.#state.stopped) o.log.warn({ event: 'outbound-stopped', since: this.#state.since, by: this.#state.by, reason: this.#state.reason }, `all outbound mail is stopped (since ${this.#state.since ? new Date(this.#state.since).toISOString() : 'unknown'} by ${this.#state.by ?? 'unknown'}); "mailward outbound start" sends it`);
  }

  get stopped(): boolean {
    return this.#state.stopped;
  }

  status(): OutboundState {
    return this.#state;
  }

  stop(by: string, reason?: string): Promise<OutboundState> {
    return this.#set(true, by, reason);
  }

  start(by: string): Promise<OutboundState> {
    return this.#set(false, by);
  }

  #set(stopped: boolean, by: string, reason?: string): Promise<OutboundState> {
    const run = this.#changing.then(async () => {
      const was = this.#state.stopped;
      const next: OutboundState = { stopped, since: (this.#o.clock ?? Date.now)(), by, ...(reason ? { reason } : {}) };
      // Durable first: a crash right after the answer must not send what the operator stopped.
      await writeOutboundState(this.#o.dataDir, next);
      this.#state = next;
      this.#o.onChange?.(stopped);
      const flushed = !stopped && was && this.#o.flush ? await this.#o.flush() : undefined;
      this.#o.log.warn(
        { event: stopped ? 'outbound-stopped' : 'outbound-started', by, changed: was !== stopped, ...(reason ? { reason } : {}), ...(flushed !== undefined ? { flushed } : {}) },
        stopped ? `all outbound mail stopped by ${by}${reason ? `: ${reason}` : ''}; local delivery goes on` : `outbound mail started again by ${by}${flushed !== undefined ? `; ${flushed} queued message(s) tried now` : ''}`,
      );
      return next;
    });
    this.#changing = run.catch(() => undefined);
    return run;
  }
}

/** The remote transport behind the switch: while stopped, every recipient is paused (no attempt). */
export function switchedTransport(inner: Transport, sw: { readonly stopped: boolean }): Transport {
  return {
    deliver(msg, indexes) {
      if (!sw.stopped) return inner.deliver(msg, indexes);
      return Promise.resolve(indexes.map((index): RecipientOutcome => ({ index, outcome: 'temporary', reply: PAUSED_REPLY, pausedMs: PAUSE_RECHECK_MS })));
    },
  };
}
