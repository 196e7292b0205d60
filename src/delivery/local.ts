// The transport for local mailboxes: per recipient domain, Mailward's own Maildir writer or an
// LMTP server (Dovecot). Config delivery.local: `transport` for every local domain, `domains` to
// send some of them the other way.
import { replyText, temp } from '../core/reply.ts';
import { domainOfAddress } from './mx.ts';
import type { DeliverableMessage, RecipientOutcome, Transport } from './transport.ts';

export type LocalKind = 'maildir' | 'lmtp';

export interface LocalTransportOptions {
  /** For every local domain not in `domains`. */
  readonly transport: LocalKind;
  /** Per domain (lower-case), overriding `transport`. */
  readonly domains: Readonly<Record<string, LocalKind>>;
  readonly maildir: Transport;
  /** Required when any domain goes to LMTP (the config schema checks it). */
  readonly lmtp?: Transport;
}

export class LocalTransport implements Transport {
  readonly #o: LocalTransportOptions;
  readonly #domains: ReadonlyMap<string, LocalKind>;

  constructor(opts: LocalTransportOptions) {
    this.#o = opts;
    this.#domains = new Map(Object.entries(opts.domains).map(([d, k]) => [d.toLowerCase().replace(/\.$/, ''), k]));
  }

  kindOf(mailbox: string): LocalKind {
    return this.#domains.get(domainOfAddress(mailbox).toLowerCase()) ?? this.#o.transport;
  }

  async deliver(msg: DeliverableMessage, indexes: readonly number[]): Promise<RecipientOutcome[]> {
    const groups: Record<LocalKind, number[]> = { maildir: [], lmtp: [] };
    for (const i of indexes) {
      const r = msg.envelope.recipients[i];
      if (r) groups[this.kindOf(r.mailbox ?? r.address)].push(i);
    }
    const out: Array<Promise<RecipientOutcome[]>> = [];
    if (groups.maildir.length > 0) out.push(this.#o.maildir.deliver(msg, groups.maildir));
    if (groups.lmtp.length > 0) {
      const lmtp = this.#o.lmtp;
      // The schema refuses an LMTP route without an address; this only guards a wiring mistake.
      const reply = replyText(temp('4.3.5', 'LMTP delivery is not configured', 451));
      out.push(lmtp ? lmtp.deliver(msg, groups.lmtp) : Promise.resolve(groups.lmtp.map((index) => ({ index, outcome: 'temporary' as const, reply }))));
    }
    return (await Promise.all(out)).flat();
  }
}
