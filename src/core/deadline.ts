// The error a deadline aborts work with: a check's time-out in the pipeline runner, a DNS list
// zone's own time-out. Code that must tell "no answer in time" from other failures (the DNS
// outage watch) tests for this type instead of reading the message.

export class DeadlineError extends Error {
  override name = 'DeadlineError';
}
