// Builds the delivery transports from the config: `local` (Maildir) and `remote` (not yet
// configurable: remote recipients wait in the queue with a temporary failure).
import type { Config } from '../config/load.ts';
import type { Logger } from '../observe/log.ts';
import type { Spool } from '../queue/spool.ts';
import { MaildirTransport } from '../delivery/maildir.ts';
import { remoteNotConfigured, type Transport } from '../delivery/transport.ts';
import type { Store } from '../store/store.ts';
import type { Resolver } from 'node:dns/promises';

export interface DeliveryDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly spool: Spool;
  readonly store: Store;
  readonly dns: Resolver;
}

export function buildTransports(d: DeliveryDeps): Record<string, Transport> {
  return {
    local: new MaildirTransport({ root: d.config.paths.mail, hostname: d.config.hostname, fsync: d.config.queue.fsync, syncer: d.spool.syncer, log: d.log }),
    remote: remoteNotConfigured,
  };
}
