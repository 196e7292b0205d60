// Delivery through a relay host (a "smarthost": Amazon SES, a provider, the office relay): always
// over TLS — implicit, or STARTTLS that must succeed — with the certificate checked, then AUTH
// when configured. The password is only ever handed to the SMTP session, never logged.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from '../observe/log.ts';
import { deliverInBatches, type BatchReplies, type DeliverableMessage, type RecipientOutcome, type Transport } from './transport.ts';
import { KeyedLimit } from './limit.ts';
import { sendMessage, type SmtpClientOptions, type SmtpTarget } from './smtp-client.ts';

export interface SmarthostOptions {
  /** The smarthost's name in the config (delivery.smarthosts.<name>), for logs. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly tls: 'implicit' | 'starttls';
  readonly auth?: { readonly user: string; readonly pass: string };
  /** Extra CA certificates (PEM) to trust for this host, e.g. a private relay's own CA. */
  readonly ca?: Buffer;
  /** Sessions with this smarthost at once. */
  readonly maxConnections: number;
  readonly client: SmtpClientOptions;
  readonly log: Logger;
  /** Host name → addresses (default: the system's resolver, which reads /etc/hosts first). */
  readonly resolve?: (host: string) => Promise<string[]>;
}

const systemResolve = async (host: string): Promise<string[]> => (await lookup(host, { all: true })).map((a) => a.address);

export class SmarthostTransport implements Transport {
  readonly #o: SmarthostOptions;
  readonly #limit: KeyedLimit;

  constructor(opts: SmarthostOptions) {
    this.#o = opts;
    this.#limit = new KeyedLimit(opts.maxConnections);
  }

  deliver(msg: DeliverableMessage, indexes: readonly number[]): Promise<RecipientOutcome[]> {
    return deliverInBatches(msg, indexes, (batch) => this.#limit.run(this.#o.name, () => this.#send(msg, batch)));
  }

  async #send(msg: DeliverableMessage, batch: readonly string[]): Promise<BatchReplies> {
    const o = this.#o;
    const env = msg.envelope;
    let addresses: string[];
    try {
      addresses = isIP(o.host) ? [o.host] : await (o.resolve ?? systemResolve)(o.host);
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? err);
      o.log.error({ event: 'smarthost-unresolved', smarthost: o.name, host: o.host, code }, `smarthost ${o.name}: cannot resolve ${o.host}`);
      return new Map(batch.map((a) => [a, { outcome: 'temporary' as const, reply: `451 4.4.3 smarthost ${o.host} not found: ${code}` }]));
    }
    let last = `451 4.4.1 smarthost ${o.host} could not be reached`;
    for (const address of addresses) {
      const target: SmtpTarget = {
        address,
        port: o.port,
        name: o.host,
        tls: o.tls,
        verifyCertificate: true,
        ...(o.ca ? { ca: o.ca } : {}),
        ...(o.auth ? { auth: o.auth } : {}),
      };
      const res = await sendMessage(target, o.client, { from: env.mailFrom, to: batch, size: env.size, eightBit: env.body !== '7BIT' }, msg.body);
      if (res.kind === 'unreachable') {
        // An operator must hear of a refused login or failed TLS: mail waits until it is fixed.
        const level = /^454 /.test(res.reply) ? 'error' : 'warn';
        o.log[level]({ event: 'smarthost-unreachable', queueId: env.id, smarthost: o.name, host: o.host, address, reply: res.reply }, `smarthost ${o.name} not usable`);
        last = res.reply;
        continue;
      }
      return new Map(batch.map((a) => [a, { ...res.replies.get(a)!, remoteMta: o.host }]));
    }
    return new Map(batch.map((a) => [a, { outcome: 'temporary' as const, reply: last }]));
  }
}
