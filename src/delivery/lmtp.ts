// Local delivery by LMTP (RFC 2033) to a mail store such as Dovecot, over a unix socket or a
// loopback TCP port. LMTP answers the message once per accepted recipient (§4.2), so one full
// mailbox (4xx) defers that recipient alone while the others are delivered, once: the queue
// records each recipient's outcome and retries only the deferred ones. A 250 is handed to the
// worker the moment it arrives (DeliverableMessage.accepted) and recorded durably then; what is
// left is the window between Dovecot's commit and its reply (docs/guide/dovecot.md).
import { Readable } from 'node:stream';
import { Outage } from '../core/outage.ts';
import { lmtpAddressText, type LmtpAddress } from '../core/lmtp-address.ts';
import type { Logger } from '../observe/log.ts';
import { normalizeLineEndings } from './crlf.ts';
import { KeyedLimit } from './limit.ts';
import { sendMessage, type SmtpClientOptions, type SmtpTarget } from './smtp-client.ts';
import { deliverInBatches, type BatchReplies, type DeliverableMessage, type RecipientOutcome, type Transport } from './transport.ts';

export interface LmtpOptions {
  readonly address: LmtpAddress;
  /** Sessions with the LMTP server at once. */
  readonly maxConnections: number;
  readonly client: SmtpClientOptions;
  readonly log: Logger;
  /** The config key that set the address, named in the outage log line. */
  readonly setting: string;
}

export class LmtpTransport implements Transport {
  readonly #o: LmtpOptions;
  readonly #limit: KeyedLimit;
  readonly #outage = new Outage();
  readonly #text: string;

  constructor(opts: LmtpOptions) {
    this.#o = opts;
    this.#limit = new KeyedLimit(opts.maxConnections);
    this.#text = lmtpAddressText(opts.address);
  }

  deliver(msg: DeliverableMessage, indexes: readonly number[]): Promise<RecipientOutcome[]> {
    return deliverInBatches(msg, indexes, (batch, accepted) => this.#limit.run('lmtp', (keepUntil) => this.#send(msg, batch, keepUntil, accepted)));
  }

  async #send(msg: DeliverableMessage, batch: readonly string[], keepUntil: (closing: Promise<unknown>) => void, accepted: (address: string, reply: string) => void): Promise<BatchReplies> {
    const o = this.#o;
    const env = msg.envelope;
    const generation = this.#outage.generation;
    const a = o.address;
    const target: SmtpTarget =
      a.kind === 'unix'
        ? { address: '127.0.0.1', port: 24, name: this.#text, socketPath: a.path, tls: 'none', verifyCertificate: false, lmtp: true }
        : { address: a.host, port: a.port, name: this.#text, tls: 'none', verifyCertificate: false, lmtp: true };
    // The spool keeps the message as it came; LMTP, like SMTP, needs CRLF lines (RFC 2033 §4.2).
    const body = (): Readable => Readable.from(normalizeLineEndings(msg.body()));
    const res = await sendMessage(target, o.client, { from: env.mailFrom, to: batch, size: env.size, eightBit: env.body !== '7BIT' }, body, keepUntil, accepted);
    if (res.kind === 'unreachable') {
      if (this.#outage.fail(generation)) {
        o.log.error(
          { event: 'lmtp-unreachable', queueId: env.id, lmtp: this.#text, reply: res.reply },
          `LMTP server ${this.#text} not usable: ${res.reply}; local mail is deferred and retried until it is. To fix: check that Dovecot (or the LMTP server) runs and that ${o.setting} names its LMTP listener (the socket's mode must let this server connect)`,
        );
      }
      return new Map(batch.map((addr) => [addr, { outcome: 'temporary' as const, reply: res.reply }]));
    }
    const end = this.#outage.recover();
    if (end) o.log.info({ event: 'lmtp-reachable', lmtp: this.#text, downMs: end.downMs, deferred: end.failures }, `LMTP server ${this.#text} is reachable again; ${end.failures} deliveries were deferred meanwhile and are retried`);
    return new Map(batch.map((addr) => [addr, { ...res.replies.get(addr)! }]));
  }
}
