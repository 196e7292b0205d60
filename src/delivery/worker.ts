// Delivers what the queue hands out: recipients due now, grouped by transport; the outcomes of a
// pass are recorded durably in the spool (one append) before the next pass can see them, and the
// message is removed when every recipient is final, or put on hold (a mark in held.log, as the
// operator's `queue hold` does) when a transport asks (the outbound guard). A bounce notice is queued before the bounce is recorded, so a crash repeats an
// attempt rather than losing a notice. One log line per outcome.
import type { Logger } from '../observe/log.ts';
import { mailEvent } from '../observe/maillog.ts';
import type { Queue, QueueItem } from '../queue/queue.ts';
import type { EnvelopeRecipient } from '../queue/envelope.ts';
import { SpoolCorruptError, SpoolNotFoundError, type RecipientState, type Spool, type SpooledMessage } from '../queue/spool.ts';
import { isDue, messageDueAt, nextState } from '../queue/schedule.ts';
import { replyText, temp } from '../core/reply.ts';
import type { DeliverableMessage, HoldRequest, RecipientOutcome, Transport } from './transport.ts';
import type { Bouncer } from './dsn.ts';

export interface WorkerOptions {
  readonly spool: Spool;
  readonly queue: Queue;
  /** Transport per recipient transport name ('local', 'remote', …). */
  readonly transports: Readonly<Record<string, Transport>>;
  readonly log: Logger;
  /** Sends bounces and delay warnings; without it, bounces are only recorded and logged. */
  readonly bouncer?: Bouncer;
}


/** One recipient's result in a pass, before it is recorded. */
interface PassUpdate {
  readonly index: number;
  state: RecipientState;
  readonly transport: string;
  readonly outcome: RecipientOutcome;
  dsn?: string;
}

/** A pass's result: the recipients' states, and why the message goes on hold when it does. */
interface PassResult {
  readonly states: RecipientState[];
  readonly hold?: HoldRequest;
  /** Every recipient is final and the message is gone from the spool already. */
  readonly removed?: boolean;
}

export class Worker {
  readonly #spool: Spool;
  readonly #queue: Queue;
  readonly #transports: Readonly<Record<string, Transport>>;
  readonly #log: Logger;
  readonly #bouncer: Bouncer | undefined;
  readonly #active = new Set<Promise<void>>();
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;

  constructor(opts: WorkerOptions) {
    this.#spool = opts.spool;
    this.#queue = opts.queue;
    this.#transports = opts.transports;
    this.#log = opts.log;
    this.#bouncer = opts.bouncer;
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
      const result = await this.#deliver(msg, item);
      // Gone already (corrupt, or removed by the pass that made every recipient final).
      if (!result || result.removed) {
        this.#queue.release(id);
        return;
      }
      const due = messageDueAt(result.states, Date.now());
      if (due === undefined) {
        await this.#spool.remove(id);
        this.#queue.release(id);
      } else if (result.hold) {
        // Held here, while the pass still holds the message: an operator's hold, release or
        // delete waits for the pass to end (Queue.withdraw), so nothing changes it under us.
        await this.#hold(msg, result.hold, result.states);
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

  /**
   * Puts a message a transport refused on hold, its states recorded already: never scheduled
   * (also not after a restart) until an operator releases it. One log line per message.
   */
  async #hold(msg: SpooledMessage, hold: HoldRequest, states: readonly RecipientState[]): Promise<void> {
    const env = msg.envelope;
    if (!(await this.#markHeld(env.id))) return; // deleted meanwhile
    const waiting = env.recipients.filter((_r, i) => states[i]?.status === 'pending' || states[i]?.status === 'deferred');
    this.#log.info(
      {
        event: 'held-by-guard',
        queueId: env.id,
        breaker: hold.breaker,
        reason: hold.reason,
        from: env.mailFrom,
        recipients: waiting.length,
        ...(env.client.login ? { login: env.client.login } : {}),
      },
      `held by the outbound guard (${hold.breaker}); "mailward queue release ${env.id}" sends it, "mailward queue delete ${env.id}" drops it`,
    );
  }

  /**
   * The one way to hold: a mark in held.log (queue/holds.ts), as `queue hold` and the hold at a
   * breaker's trip make, so `queue list --state held` and `queue release` treat every held message
   * alike; the file stays in queue/. False when the message was deleted meanwhile.
   */
  async #markHeld(id: string): Promise<boolean> {
    return (await this.#spool.holdMany([id])) > 0;
  }

  /** Delivers the due recipients; resolves the new states, or undefined if the message turned out corrupt. */
  async #deliver(msg: SpooledMessage, item: QueueItem): Promise<PassResult | undefined> {
    const env = msg.envelope;
    const states = [...msg.states];
    const now = Date.now();
    const groups = new Map<string, number[]>();
    states.forEach((s, i) => {
      // An operator's flush tries deferred recipients before their time.
      if (!isDue(s, now) && !(item.flush === true && s.status === 'deferred')) return;
      const name = env.recipients[i]!.transport;
      groups.set(name, [...(groups.get(name) ?? []), i]);
    });
    if (groups.size === 0) return { states };
    let corrupt = false;
    const body = () => {
      const s = this.#spool.openBody(env.id);
      // Also keeps an unhandled 'error' from crashing the process if a transport ignores it.
      s.on('error', (err) => {
        if (err instanceof SpoolCorruptError) corrupt = true;
      });
      return s;
    };
    // A success a transport hears early (LMTP's reply per recipient) is recorded at once, not
    // with the pass: the pass may go on for minutes (another group, a slow MX), and a crash
    // meanwhile would deliver that recipient again at the next start.
    const early: Array<Promise<void>> = [];
    const durable = new Set<number>();
    const accepted = (outcomes: readonly RecipientOutcome[]): void => {
      const ups = outcomes
        .filter((o) => o.outcome === 'ok' && (states[o.index]!.status === 'pending' || states[o.index]!.status === 'deferred'))
        .map((o) => ({ index: o.index, state: nextState(states[o.index]!, 'ok', o.reply, env.receivedAt, Date.now(), this.#queue.options) }));
      if (ups.length === 0) return;
      early.push(
        this.#spool.markRecipients(env.id, ups).then(
          () => {
            for (const u of ups) durable.add(u.index);
            this.#log.debug({ event: 'recipients-recorded', queueId: env.id, rcpts: ups.map((u) => env.recipients[u.index]!.address) }, 'recorded as delivered on the reply');
          },
          // Recorded with the rest of the pass instead.
          (err: unknown) => this.#log.debug({ event: 'recipients-record-later', queueId: env.id, err }, 'could not record the reply at once; recorded with the pass'),
        ),
      );
    };
    const deliverable: DeliverableMessage = { envelope: env, body, recovered: item.recovered, accepted };
    // A transport never throws here.
    const results = await Promise.all([...groups].map(async ([name, indexes]) => ({ name, outcomes: await this.#callTransport(name, deliverable, indexes) })));
    await Promise.all(early);
    // The spool moved a corrupt message aside: there is nothing left to record.
    if (corrupt) {
      this.#log.error({ event: 'delivery-corrupt', queueId: env.id }, 'message bytes corrupt; not delivered (moved to corrupt/)');
      return undefined;
    }
    const at = Date.now();
    const updates: PassUpdate[] = [];
    let hold: HoldRequest | undefined;
    for (const { name, outcomes } of results) {
      for (const o of outcomes) {
        const prev = states[o.index]!;
        const h = o.hold;
        if (h) {
          // Not an attempt: the attempts stay, the reply shows why it waits, and a retry time
          // is now, so that the operator's release sends it at once.
          hold ??= h;
          const state: RecipientState = { ...prev, lastReply: o.reply, updatedAt: at, ...(prev.status === 'deferred' ? { nextAttemptAt: at } : {}) };
          updates.push({ index: o.index, state, transport: name, outcome: o });
          continue;
        }
        if (o.pausedMs !== undefined) {
          // Not an attempt either (outbound stopped): the attempts stay; deferred until a recheck
          // (a pending recipient would be due again at once and spin the worker).
          const state: RecipientState = { ...prev, status: 'deferred', lastReply: o.reply, updatedAt: at, nextAttemptAt: at + o.pausedMs };
          updates.push({ index: o.index, state, transport: name, outcome: o });
          continue;
        }
        let state = nextState(prev, o.outcome, o.reply, env.receivedAt, at, this.#queue.options);
        if (prev.warned === true && state.status === 'deferred') state = { ...state, warned: true };
        updates.push({ index: o.index, state, transport: name, outcome: o });
      }
    }
    await this.#notify(deliverable, updates, at);
    for (const u of updates) states[u.index] = u.state;
    // The pass that makes every recipient final removes the message durably instead of recording
    // states no one will read (Spool.removeDelivered): the common case, one attempt and done.
    const removed = !hold && messageDueAt(states, at) === undefined;
    if (removed) await this.#spool.removeDelivered(env.id);
    else
      await this.#spool.markRecipients(
        env.id,
        // Those recorded on their reply already are final: a second record would change nothing.
        updates.filter((u) => !durable.has(u.index)).map((u) => ({ index: u.index, state: u.state })),
      );
    for (const u of updates) {
      // A held recipient has the message's one held-by-guard line instead.
      // A paused one (outbound stopped) made no attempt: a debug line, not a mail event.
      if (u.outcome.pausedMs !== undefined) this.#log.debug({ event: 'outbound-paused', queueId: env.id, rcpt: env.recipients[u.index]!.address, nextAttemptAt: u.state.nextAttemptAt }, 'outbound stopped: not sent');
      else if (!u.outcome.hold) this.#logOutcome(env.id, env.recipients[u.index]!, u, env.receivedAt);
    }
    return { states, ...(hold ? { hold } : {}), ...(removed ? { removed } : {}) };
  }

  /**
   * Queues the bounce for recipients that failed for good, and delay warnings when due. A bounce
   * that cannot be queued keeps its recipients deferred: recorded as bounced, the notice would be
   * lost for good; deferred, the next pass fails again and tries the notice again.
   */
  async #notify(msg: DeliverableMessage, updates: PassUpdate[], at: number): Promise<void> {
    const bouncer = this.#bouncer;
    if (!bouncer) return;
    const env = msg.envelope;
    const warnAfter = bouncer.delayWarningAfterMs;
    // Held recipients wait for an operator, not for a retry: no delay warning for them.
    const late = warnAfter !== undefined && at - env.receivedAt >= warnAfter ? updates.filter((u) => !u.outcome.hold && u.outcome.pausedMs === undefined && u.state.status === 'deferred' && u.state.warned !== true) : [];
    const bounced = updates.filter((u) => u.state.status === 'bounced');
    if (bounced.length > 0) {
      try {
        const dsn = await bouncer.notify('failed', msg, bounced.map((u) => ({ index: u.index, state: u.state, ...(u.outcome.remoteMta ? { remoteMta: u.outcome.remoteMta } : {}) })));
        if (dsn) for (const u of bounced) u.dsn = dsn;
      } catch (err) {
        const retryAt = at + this.#queue.options.minBackoffMs;
        this.#log.error({ event: 'bounce-failed', queueId: env.id, err, retryAt }, 'could not queue the bounce; the recipients stay deferred');
        for (const u of bounced) u.state = { status: 'deferred', attempts: u.state.attempts, nextAttemptAt: retryAt, ...(u.state.lastReply ? { lastReply: u.state.lastReply } : {}), updatedAt: at };
      }
    }
    if (late.length > 0) {
      try {
        const dsn = await bouncer.notify('delayed', msg, late.map((u) => ({ index: u.index, state: u.state, ...(u.outcome.remoteMta ? { remoteMta: u.outcome.remoteMta } : {}) })));
        for (const u of late) {
          u.state = { ...u.state, warned: true };
          if (dsn) u.dsn = dsn;
        }
      } catch (err) {
        // A warning is a courtesy: the next pass tries it again.
        this.#log.error({ event: 'delay-warning-failed', queueId: env.id, err }, 'could not queue the delay warning');
      }
    }
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

  #logOutcome(queueId: string, r: EnvelopeRecipient, u: PassUpdate, receivedAt: number): void {
    const { state, outcome: o, transport } = u;
    const rcpt = r.address;
    const event = state.status === 'delivered' ? 'delivered' : state.status === 'bounced' ? 'bounced' : 'deferred';
    const line: Record<string, unknown> = { queueId, rcpt, to: rcpt, transport, reply: o.reply, attempts: state.attempts };
    // The mailbox an alias resolved to (the log's to= in postfix format, with orig_to= the RCPT TO).
    if (r.mailbox !== undefined && r.mailbox !== rcpt) line.mailbox = r.mailbox;
    if (o.remoteMta) line.relay = o.remoteMta;
    if (event === 'bounced' && o.outcome === 'temporary') line.reason = 'expired';
    if (event === 'deferred') line.nextAttemptAt = state.nextAttemptAt;
    if (event === 'delivered') line.delayMs = Date.now() - receivedAt;
    if (u.dsn) line.dsn = u.dsn;
    // Through the mail event set, so metrics and the dashboard see deliveries too.
    mailEvent(this.#log, event, line);
  }
}
