// The closed set of mail events, one structured log line per decision, so that an operator can
// grep one line to learn who sent what, through which check, with which reply.
import type { Logger } from './log.ts';
import { mailEvents } from './events.ts';

export type MailEvent =
  | 'connect'
  | 'disconnect'
  | 'auth'
  | 'accepted'
  | 'rejected'
  | 'deferred'
  | 'discarded'
  | 'queued'
  /** Accepted (250) but kept in the spool's quarantine: kill-level spam, never delivered. */
  | 'quarantined'
  | 'delivered'
  | 'bounced'
  | 'breaker'
  /** An outbound TLS decision (MTA-STS, DANE, REQUIRETLS): a session verified, failed, sent in clear, or an MX skipped. */
  | 'tls-policy'
  | 'protocol';

export interface MailEventFields {
  readonly session?: string;
  readonly queueId?: string;
  readonly client?: string;
  readonly proxy?: string;
  readonly listener?: string;
  readonly login?: string;
  readonly helo?: string;
  readonly from?: string;
  readonly to?: string | readonly string[];
  readonly stage?: string;
  readonly check?: string;
  readonly reason?: string;
  readonly reply?: string;
  readonly [extra: string]: unknown;
}

/** `quiet`: a routine decision (a policy DUNNO) logged at debug; subscribers still see it. */
export function mailEvent(log: Logger, event: MailEvent, fields: MailEventFields, quiet = false): void {
  const level = event === 'breaker' || event === 'bounced' ? 'warn' : quiet ? 'debug' : 'info';
  log[level]({ event, ...fields }, event);
  // The same event, for in-process subscribers (metrics, dashboard); see events.ts.
  mailEvents.publish(event, fields);
}
