// Delivery through a relay host (a "smarthost": SES, a provider, the office relay): always over TLS
// (implicit, or STARTTLS that must succeed) with the certificate checked, then AUTH when configured;
// the password is never logged. A relay that cannot be reached defers mail, logged once per outage.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Outage } from '../core/outage.ts';
import type { Logger } from '../observe/log.ts';
import { deliverInBatches, type BatchReplies, type DeliverableMessage, type RecipientOutcome, type Transport } from './transport.ts';
import { KeyedLimit } from './limit.ts';
import { sendMessage, type SmtpClientOptions, type SmtpTarget } from './smtp-client.ts';
import { mailEvent } from '../observe/maillog.ts';

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
  // Per host:port (one transport talks to one): a down relay is one pair of log lines, not one
  // line per deferred message.
  readonly #outage = new Outage();

  constructor(opts: SmarthostOptions) {
    this.#o = opts;
    this.#limit = new KeyedLimit(opts.maxConnections);
  }

  /** A session got through (whatever the relay then said of the mail). */
  #reached(): void {
    const end = this.#outage.recover();
    if (!end) return;
    const o = this.#o;
    o.log.info(
      { event: 'smarthost-reachable', smarthost: o.name, host: o.host, port: o.port, downMs: end.downMs, deferred: end.failures },
      `smarthost ${o.name} (${o.host}:${o.port}) is reachable again after ${(end.downMs / 1000).toFixed(1)} s; ${end.failures} deliveries were deferred meanwhile and are retried`,
    );
  }

  /** No session got through: the first failure of an outage tells the operator what to check. */
  #unreachable(generation: number, reply: string, queueId: string): void {
    if (!this.#outage.fail(generation)) return;
    const o = this.#o;
    const key = `delivery.smarthosts.${o.name}`;
    // A refused login or failed TLS is the operator's to fix: an error, not a warning.
    const config = /^454 /.test(reply);
    const fix = config
      ? `check ${key}.auth (user and password), ${key}.tls and ${key}.ca against what the relay expects`
      : `check that the relay is up and that ${key}.host and ${key}.port (${o.host}:${o.port}) are right and reachable from this host`;
    o.log[config ? 'error' : 'warn'](
      { event: 'smarthost-unreachable', queueId, smarthost: o.name, host: o.host, port: o.port, reply },
      `smarthost ${o.name} (${o.host}:${o.port}) not usable: ${reply}; mail for it is deferred and retried until it is. To fix: ${fix}`,
    );
  }

  deliver(msg: DeliverableMessage, indexes: readonly number[]): Promise<RecipientOutcome[]> {
    return deliverInBatches(msg, indexes, (batch) => this.#limit.run(this.#o.name, (keepUntil) => this.#send(msg, batch, keepUntil)));
  }

  async #send(msg: DeliverableMessage, batch: readonly string[], keepUntil: (closing: Promise<unknown>) => void): Promise<BatchReplies> {
    const o = this.#o;
    const env = msg.envelope;
    const generation = this.#outage.generation;
    let addresses: string[];
    try {
      addresses = isIP(o.host) ? [o.host] : await (o.resolve ?? systemResolve)(o.host);
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? err);
      const reply = `451 4.4.3 smarthost ${o.host} not found: ${code}`;
      o.log.debug({ event: 'smarthost-unresolved', queueId: env.id, smarthost: o.name, host: o.host, code }, `smarthost ${o.name}: cannot resolve ${o.host}`);
      this.#unreachable(generation, reply, env.id);
      return new Map(batch.map((a) => [a, { outcome: 'temporary' as const, reply }]));
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
        // Always verified TLS here; a REQUIRETLS message also needs the relay to carry it on.
        ...(env.requireTls === true ? { requireTlsExtension: true } : {}),
      };
      const res = await sendMessage(target, o.client, { from: env.mailFrom, to: batch, size: env.size, eightBit: env.body !== '7BIT' }, msg.body, keepUntil);
      if (res.kind === 'unreachable' && res.requireTlsRefused) {
        // This message's demand, not an outage: the relay is up, and other mail goes on.
        mailEvent(o.log, 'tls-policy', { queueId: env.id, domain: o.host, policy: 'requiretls', mode: 'require', result: 'not-offered', host: o.host, reason: res.reply });
        this.#reached();
        return new Map(batch.map((a) => [a, { outcome: 'temporary' as const, reply: res.reply }]));
      }
      if (res.kind === 'unreachable') {
        // Per message at debug: the outage itself is logged once (#unreachable).
        o.log.debug({ event: 'smarthost-attempt-failed', queueId: env.id, smarthost: o.name, host: o.host, address, reply: res.reply }, `smarthost ${o.name} not usable`);
        last = res.reply;
        continue;
      }
      this.#reached();
      return new Map(batch.map((a) => [a, { ...res.replies.get(a)!, remoteMta: o.host }]));
    }
    this.#unreachable(generation, last, env.id);
    return new Map(batch.map((a) => [a, { outcome: 'temporary' as const, reply: last }]));
  }
}
