// The DMARC aggregate report job in the running server (config dmarcReports.send): a look at the
// ended periods every period (at most hourly), serialized, so a manual run and the timer never
// send the same period twice in one process (the store guards across processes and nodes).
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import type { Store } from '../store/store.ts';
import type { SpoolBegin } from '../queue/generated.ts';
import type { LocalDirectory } from '../pipeline/check.ts';
import { senderRouter } from './delivery.ts';
import type { DmarcReportRun } from './dmarc-aggregate.ts';

export type { DmarcReportRun } from './dmarc-aggregate.ts';

export interface DmarcReports {
  /** Sends what ended by `now`; [] when dmarcReports.send is off. */
  run(now: number): Promise<DmarcReportRun[]>;
  stop(): void;
}

export function startDmarcReports(d: { config: Config; store: Store; dns: { resolveTxt(name: string): Promise<string[][]> }; spool: SpoolBegin; directory: LocalDirectory; log: Logger; clock: () => number }): DmarcReports {
  const s = d.config.dmarcReports.send;
  if (!s.enabled) return { run: () => Promise.resolve([]), stop: () => undefined };
  const domain = d.config.domains[0] ?? d.config.hostname;
  const job = {
    store: d.store,
    dns: d.dns,
    spool: d.spool,
    log: d.log,
    hostname: d.config.hostname,
    organization: s.organization ?? d.config.hostname,
    from: s.from ?? `postmaster@${domain}`,
    route: senderRouter(d.config, d.directory),
  };
  let chain: Promise<unknown> = Promise.resolve();
  const run = (now: number): Promise<DmarcReportRun[]> => {
    // The report builder (and its XML library) loads at the first run, not at start (0033).
    const next = chain.then(async () => (await import('./dmarc-aggregate.ts')).sendDmarcReports(job, now));
    chain = next.catch(() => undefined);
    return next;
  };
  const timer = setInterval(() => {
    run(d.clock()).catch((err: unknown) => d.log.warn({ event: 'dmarc-report-failed', err: String(err) }, 'DMARC aggregate reports could not be sent'));
  }, Math.min(s.interval, 3_600_000));
  timer.unref();
  return { run, stop: () => clearInterval(timer) };
}
