// The transport for recipients that leave this server: picks the route per recipient domain from
// the routing table (exact domain, then ".parent" entries, then "*", else direct MX), prepares
// the outbound bytes once per pass (CRLF line endings, DKIM signature) and hands each group of
// recipients to its transport: local (Maildir), smarthost:<name> or mx.
import { onlyForwarded } from '../core/relay-reason.ts';
import { Readable } from 'node:stream';
import type { Logger } from '../observe/log.ts';
import { replyText, temp } from '../core/reply.ts';
import type { Envelope } from '../queue/envelope.ts';
import type { DeliverableMessage, RecipientOutcome, Transport } from './transport.ts';
import { normalizeLineEndings } from './crlf.ts';
import { dkimSignature, type DkimKeys } from './dkim-sign.ts';
import { fromDomain, parseHeaderFields, readHeaderBlock } from './headers.ts';
import { domainOfAddress } from './mx.ts';
import { BOUNCE_LISTENER } from './dsn.ts';
import { DMARC_REPORT_LISTENER, TLS_REPORT_LISTENER } from '../queue/generated.ts';

/** A route: "local", "mx" or "smarthost:<name>". */
export type RouteName = string;

/** The routing table, compiled once: lookups are a few map reads. */
export class RouteTable {
  readonly #exact = new Map<string, RouteName>();
  readonly #parents = new Map<string, RouteName>();
  readonly #fallback: RouteName;

  /** Keys: "example.com" (that domain), ".example.com" (its subdomains), "*" (everything else; default "mx"). */
  constructor(routes: Readonly<Record<string, RouteName>>) {
    let fallback: RouteName = 'mx';
    for (const [key, route] of Object.entries(routes)) {
      const k = key.toLowerCase().replace(/\.$/, '');
      if (k === '*') fallback = route;
      else if (k.startsWith('.')) this.#parents.set(k.slice(1), route);
      else this.#exact.set(k, route);
    }
    this.#fallback = fallback;
  }

  lookup(domain: string): RouteName {
    const d = domain.toLowerCase().replace(/\.$/, '');
    const exact = this.#exact.get(d);
    if (exact !== undefined) return exact;
    // The nearest parent wins: ".mail.example.com" before ".example.com".
    for (let dot = d.indexOf('.'); dot !== -1; dot = d.indexOf('.', dot + 1)) {
      const r = this.#parents.get(d.slice(dot + 1));
      if (r !== undefined) return r;
    }
    return this.#fallback;
  }
}

const OWN_MAIL_LISTENERS: ReadonlySet<string> = new Set([BOUNCE_LISTENER, TLS_REPORT_LISTENER, DMARC_REPORT_LISTENER]);

/**
 * Whether this server may put its DKIM signature on a message: only on mail a user submitted
 * (a login), a trusted network relayed, or this server wrote (bounces) — never on mail from the
 * world that is merely forwarded, or anyone could get a forged From signed by us. The server's
 * own mail is bounces and the TLS-RPT and DMARC reports (which RFC 8460 §5.3 says MUST be signed).
 */
export function maySign(env: Envelope): boolean {
  // A stranger's message forwarded by an alias is not ours to vouch for (its From may be forged).
  return env.client.login !== undefined || (env.relayReason !== undefined && !onlyForwarded(env.relayReason)) || OWN_MAIL_LISTENERS.has(env.client.listener);
}

export interface RouterOptions {
  readonly routes: RouteTable;
  /** By route name: "local", "mx", "smarthost:<name>". */
  readonly transports: Readonly<Record<RouteName, Transport>>;
  readonly dkim?: DkimKeys;
  readonly log: Logger;
  /**
   * The SRS envelope sender for the outside copy of forwarded mail from `sender` (docs/decisions/
   * 0014-forwarding.md), or undefined to keep `sender` (SRS off, or a sender of our own domains).
   */
  readonly srs?: (sender: string) => string | undefined;
}

/** A recipient an alias forwards outside: the RCPT address (ours) is not where it goes. */
export const isForwardedCopy = (r: { readonly address: string; readonly mailbox?: string; readonly transport: string }): boolean =>
  r.transport === 'remote' && r.mailbox !== undefined && r.mailbox.toLowerCase() !== r.address.toLowerCase();

export class Router implements Transport {
  readonly #o: RouterOptions;

  constructor(opts: RouterOptions) {
    this.#o = opts;
  }

  /** The route of one recipient. */
  routeOf(env: Envelope, index: number): RouteName {
    const r = env.recipients[index]!;
    return this.#o.routes.lookup(domainOfAddress(r.mailbox ?? r.address));
  }

  async deliver(msg: DeliverableMessage, indexes: readonly number[]): Promise<RecipientOutcome[]> {
    const env = msg.envelope;
    // The outside copies of forwarded mail leave with an SRS sender, so the next hop's SPF checks
    // our domain and its bounce comes back to us; they go in transactions of their own.
    const srsSender = env.mailFrom !== '' ? this.#o.srs?.(env.mailFrom) : undefined;
    const groups = new Map<string, { route: RouteName; srs: boolean; idx: number[] }>();
    for (const i of indexes) {
      const r = env.recipients[i];
      if (!r) continue;
      const route = this.routeOf(env, i);
      const srs = srsSender !== undefined && isForwardedCopy(r);
      const key = `${route}\n${srs}`;
      const g = groups.get(key) ?? { route, srs, idx: [] };
      g.idx.push(i);
      groups.set(key, g);
    }
    let outbound: DeliverableMessage | undefined;
    if ([...groups.values()].some((g) => g.route !== 'local')) outbound = await this.prepare(msg);
    const results = await Promise.all(
      [...groups.values()].map(async ({ route, srs, idx }) => {
        const t = this.#o.transports[route];
        if (!t) {
          // The config schema refuses unknown routes; this only guards against a wiring mistake.
          const reply = replyText(temp('4.3.5', `no transport for route ${route}`, 451));
          return idx.map((index) => ({ index, outcome: 'temporary' as const, reply }));
        }
        if (route === 'local') return t.deliver(msg, idx);
        if (!srs) return t.deliver(outbound!, idx);
        this.#o.log.debug({ event: 'srs-rewritten', queueId: env.id, from: env.mailFrom, srs: srsSender }, 'forwarded copy sent with an SRS sender');
        return t.deliver({ ...outbound!, envelope: { ...outbound!.envelope, mailFrom: srsSender! } }, idx);
      }),
    );
    return results.flat();
  }

  /**
   * The message as it leaves: a DKIM-Signature first when a key covers the From domain, and line
   * endings made CRLF. The signature is computed over exactly these bytes (one extra read).
   */
  async prepare(msg: DeliverableMessage): Promise<DeliverableMessage> {
    const env = msg.envelope;
    let signature = Buffer.alloc(0);
    if (this.#o.dkim && this.#o.dkim.size > 0 && maySign(env)) {
      const domain = fromDomain(parseHeaderFields(await readHeaderBlock(msg.body())));
      const key = domain ? this.#o.dkim.keyFor(domain) : undefined;
      if (key) {
        signature = Buffer.from(await dkimSignature(key, Readable.from(outboundBytes(Buffer.alloc(0), msg))), 'utf8');
        this.#o.log.debug({ event: 'dkim-signed', queueId: env.id, domain: key.domain, selector: key.selector }, 'DKIM signed');
      }
    }
    const head = signature;
    return {
      envelope: { ...env, size: env.size + head.length },
      recovered: msg.recovered,
      ...(msg.accepted ? { accepted: msg.accepted } : {}),
      body: () => Readable.from(outboundBytes(head, msg)),
    };
  }
}

/**
 * The signature, then the normalised message. The spool file is opened only when the bytes are
 * first read: a transaction refused before DATA never opens (and so never leaks) it.
 */
async function* outboundBytes(head: Buffer, msg: DeliverableMessage): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  yield* normalizeLineEndings(msg.body());
}
