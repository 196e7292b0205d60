// Delivers what the queue hands out: recipients due now, grouped by transport; each outcome is
// recorded durably in the spool before the next pass can see it, and the message is removed when
// every recipient is final. One log line per recipient outcome.
import type { Logger } from '../observe/log.ts';
import type { Queue, QueueItem } from '../queue/queue.ts';
import { SpoolCorruptError, SpoolNotFoundError, type RecipientState, type Spool, type SpooledMessage, type StateUpdate } from '../queue/spool.ts';
import { isDue, messageDueAt, nextState } from '../queue/schedule.ts';
import { replyText, temp } from '../core/reply.ts';
import type { DeliverableMessage, RecipientOutcome, Transport } from './transport.ts';

export interface WorkerOptions {
  readonly spool: Spool;
  readonly queue: Queue;
  /** Transport per recipient transport name ('local', 'remote', …). */
  readonly transports: Readonly<Record<string, Transport>>;
  readonly log: Logger;
}

export class Worker {
  readonly #spool: Spool;
  readonly #queue: Queue;
  readonly #transports: Readonly<Record<string, Transport>>;
  readonly #log: Logger;
  readonly #active = new Set<Promise<void>>();
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;

  constructor(opts: WorkerOptions) {
    this.#spool = opts.spool;
    this.#queue = opts.queue;
    this.#transports = opts.transports;
    this.#log = opts.log;
  }

  /** Starts taking due messages from the queue. */
  start(): void {
    if (this.#loop) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#loop = this.#run(abort.signal);
  }

  /** Stops taking work and waits for the deliveries under way. */
  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
    await Promise.allSettled([...this.#active]);
    this.#loop = undefined;
  }

  async #run(signal: AbortSignal): Promise<void> {
    for (;;) {
      const item = await this.#queue.take(signal);
      if (!item) return;
      const p = this.#pass(item).finally(() => this.#active.delete(p));
      this.#active.add(p);
    }
  }

  /** One delivery pass over a message; always gives the item back to the queue. */
  async #pass(item: QueueItem): Promise<void> {
    const { id } = item;
    try {
      const msg = await this.#spool.get(id);
      if (!msg) {
        // Removed meanwhile, or corrupt and moved aside (the spool logged that).
        this.#queue.release(id);
        return;
      }
      const states = await this.#deliver(msg, item.recovered);
      if (!states) {
        this.#queue.release(id);
        return;
      }
      const now = Date.now();
      const due = messageDueAt(states, now);
      if (due === undefined) {
        await this.#spool.remove(id);
        this.#queue.release(id);
      } else {
        this.#queue.release(id, { dueAt: due });
      }
    } catch (err) {
      if (err instanceof SpoolNotFoundError) {
        this.#queue.release(id);
        return;
      }
      // The outcome may not be recorded: treat the next pass like one after a crash.
      const retryAt = Date.now() + this.#queue.options.minBackoffMs;
      this.#log.error({ event: 'delivery-error', queueId: id, err, retryAt }, 'delivery pass failed; will retry');
      this.#queue.release(id, { dueAt: retryAt, recovered: true });
    }
  }

  /** Delivers the due recipients; resolves the new states, or undefined if the message turned out corrupt. */
  async #deliver(msg: SpooledMessage, recovered: boolean): Promise<RecipientState[] | undefined> {
    const env = msg.envelope;
    const states = [...msg.states];
    const now = Date.now();
    const groups = new Map<string, number[]>();
    states.forEach((s, i) => {
      if (!isDue(s, now)) return;
      const name = env.recipients[i]!.transport;
      groups.set(name, [...(groups.get(name) ?? []), i]);
    });
    let corrupt = false;
    const body = () => {
      const s = this.#spool.openBody(env.id);
      // Also keeps an unhandled 'error' from crashing the process if a transport ignores it.
      s.on('error', (err) => {
        if (err instanceof SpoolCorruptError) corrupt = true;
      });
      return s;
    };
    const deliverable: DeliverableMessage = { envelope: env, body, recovered };
    // allSettled: every group finishes before the pass ends, even when one fails.
    const settled = await Promise.allSettled(
      [...groups].map(async ([name, indexes]) => {
        const outcomes = await this.#callTransport(name, deliverable, indexes);
        // The spool moved a corrupt message aside: there is nothing left to record.
        if (corrupt) return;
        const at = Date.now();
        const updates: StateUpdate[] = outcomes.map((o) => ({ index: o.index, state: nextState(states[o.index]!, o.outcome, o.reply, env.receivedAt, at, this.#queue.options) }));
        await this.#spool.markRecipients(env.id, updates);
        for (const u of updates) {
          states[u.index] = u.state;
          this.#logOutcome(env.id, env.recipients[u.index]!.address, name, u.state, outcomes.find((o) => o.index === u.index)!);
        }
      }),
    );
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    if (corrupt) {
      this.#log.error({ event: 'delivery-corrupt', queueId: env.id }, 'message bytes corrupt; not delivered (moved to corrupt/)');
      return undefined;
    }
    return states;
  }

  /** Calls a transport; a missing transport, a throw or a missing outcome is a temporary failure. */
  async #callTransport(name: string, msg: DeliverableMessage, indexes: number[]): Promise<RecipientOutcome[]> {
    const transport = this.#transports[name];
    let got: RecipientOutcome[] = [];
    let failure = replyText(temp('4.3.5', `No transport configured for "${name}"`, 451));
    if (transport) {
      failure = replyText(temp('4.3.0', 'Delivery failed, will retry', 451));
      try {
        got = await transport.deliver(msg, indexes);
      } catch (err) {
        this.#log.error({ event: 'transport-error', queueId: msg.envelope.id, transport: name, err }, 'transport threw');
      }
    } else {
      this.#log.error({ event: 'transport-missing', queueId: msg.envelope.id, transport: name }, `no transport "${name}"; recipients deferred`);
    }
    return indexes.map((index) => got.find((o) => o.index === index) ?? { index, outcome: 'temporary', reply: failure });
  }

  #logOutcome(queueId: string, rcpt: string, transport: string, state: RecipientState, o: RecipientOutcome): void {
    const event = state.status === 'delivered' ? 'delivered' : state.status === 'bounced' ? 'bounced' : 'deferred';
    const line: Record<string, unknown> = { event, queueId, rcpt, transport, reply: o.reply, attempts: state.attempts };
    if (event === 'bounced' && o.outcome === 'temporary') line.reason = 'expired';
    if (event === 'deferred') line.nextAttemptAt = state.nextAttemptAt;
    // The bounce message (DSN) itself is a later issue; for now the state and this line record it.
    if (event === 'bounced') this.#log.warn(line, event);
    else this.#log.info(line, event);
  }
}
