// An in-process channel for mail events: every `mailEvent` call is also handed to the
// subscribers here (metrics, dashboard statistics), synchronously and in order, so they see
// exactly the decisions the log shows. A subscriber that throws is dropped from that one call,
// never from the mail path: observing must not be able to refuse or delay a message.
import type { MailEvent, MailEventFields } from './maillog.ts';

export interface PublishedEvent {
  readonly event: MailEvent;
  readonly fields: MailEventFields;
  /** When it was published (ms since the epoch). */
  readonly at: number;
}

export type MailEventListener = (e: PublishedEvent) => void;

export class MailEventBus {
  #listeners: MailEventListener[] = [];
  #errors = 0;

  /** Adds a listener; the returned function removes it again. */
  subscribe(fn: MailEventListener): () => void {
    this.#listeners = [...this.#listeners, fn];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== fn);
    };
  }

  publish(event: MailEvent, fields: MailEventFields, at: number = Date.now()): void {
    // The array is replaced, never changed, on (un)subscribe: a listener that unsubscribes
    // while an event is being handed out does not make another one miss it.
    const listeners = this.#listeners;
    if (listeners.length === 0) return;
    const e: PublishedEvent = { event, fields, at };
    for (const l of listeners) {
      try {
        l(e);
      } catch {
        this.#errors++;
      }
    }
  }

  get listenerCount(): number {
    return this.#listeners.length;
  }

  /** How many times a listener threw (shown by the metrics; the mail path never sees it). */
  get listenerErrors(): number {
    return this.#errors;
  }
}

/** The process's bus: `mailEvent` publishes here. One server per process, as in production. */
export const mailEvents = new MailEventBus();
