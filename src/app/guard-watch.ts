// The server's watch on the outbound guard: breakers trip wherever a session runs (this process,
// an acceptor process, another node), and all of them are in the store, so the process that owns
// the queue looks there. A new breaker's queued mail is put on hold at once — one queue operation
// over the catalog and one summary line — instead of staying "deferred" until its next retry;
// new early warnings are counted for /metrics.
import { holdSelection } from '../guard/alerts.ts';
import type { OutboundGuard } from '../guard/guard.ts';
import type { EarlyWarning } from '../guard/warnings.ts';
import type { Logger } from '../observe/log.ts';
import type { QueueFilter } from '../queue/filter.ts';

/** Runs one queue operation (QueueAdmin.run's shape); resolves how many messages it changed. */
export type HoldBySender = (filter: QueueFilter) => Promise<number>;

export interface GuardWatch {
  /** Looks at the store once (also run every `intervalMs`). */
  tick(): Promise<void>;
  /** The messages of breaker `name` (tripped at `trippedAt`) put on hold at its trip; undefined when none could be chosen. */
  heldAtTrip(name: string, trippedAt: number): Promise<number | undefined>;
  stop(): Promise<void>;
}

/**
 * Which queued messages a breaker stands for, as a queue selection (alerts.ts holdSelection): a
 * login's by the login that submitted them, whatever envelope sender they carry.
 */
export function holdFilter(name: string): QueueFilter | undefined {
  return holdSelection(name);
}

export function startGuardWatch(o: {
  guard: OutboundGuard;
  hold: HoldBySender;
  log: Logger;
  clock?: () => number;
  intervalMs?: number;
  onWarning?: (w: EarlyWarning) => void;
}): GuardWatch {
  const clock = o.clock ?? Date.now;
  // name@trippedAt → the hold (its count; undefined: nothing to select), kept as a promise so an
  // alert written while the hold runs waits for its count; kept for the process's life (a few
  // entries per incident).
  const trips = new Map<string, Promise<number | undefined>>();
  const warned = new Set<string>();
  let running: Promise<void> | undefined;

  const startedAt = clock();
  const holdFor = async (name: string, kind: string, trippedAt: number): Promise<number | undefined> => {
    const filter = holdFilter(name);
    if (!filter) return undefined;
    let n: number;
    try {
      n = await o.hold(filter);
    } catch (err) {
      o.log.error({ event: 'guard-hold-failed', breaker: name, err: String(err) }, `could not put the queued mail of ${name} on hold; it is held when its delivery comes up`);
      return undefined;
    }
    // A breaker open since before this process started (a restart) was told already; its hold
    // here only catches what the last process left queued, and is told only when there was some.
    if (trippedAt < startedAt && n === 0) return n;
    // The one summary line of the hold (event "breaker", state "held"), and the alert channels.
    await o.guard.alerter.raise({ state: 'held', name, kind, reason: `${n} queued message(s) of ${name} put on hold at the trip`, figures: { held: n, ...(filter.login !== undefined ? { login: filter.login } : { sender: filter.sender ?? '' }) }, at: clock() });
    return n;
  };

  const tick = (): Promise<void> => {
    running ??= (async () => {
      try {
        for (const b of await o.guard.breakers.list()) {
          const key = `${b.name}@${b.trippedAt}`;
          if (trips.has(key)) continue;
          const hold = holdFor(b.name, b.kind, b.trippedAt);
          trips.set(key, hold);
          await hold;
        }
        if (o.onWarning) {
          for (const w of await o.guard.warnings.list(clock())) {
            const key = `${w.name}@${w.at}`;
            if (warned.has(key)) continue;
            warned.add(key);
            o.onWarning(w);
          }
        }
      } catch {
        // The store is away: the next tick looks again.
      }
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void tick(), o.intervalMs ?? 500);
  timer.unref();
  void tick();
  return {
    tick,
    async heldAtTrip(name, trippedAt) {
      const key = `${name}@${trippedAt}`;
      // A tick already under way may have listed the breakers before this one tripped.
      for (let i = 0; i < 2 && !trips.has(key); i++) await tick();
      return await trips.get(key);
    },
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
