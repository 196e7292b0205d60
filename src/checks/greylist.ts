// Greylisting with postgrey's semantics: the triplet (client network, sender, recipient) is
// deferred with 450 on first sight, accepted when retried after `delay`, and forgotten after
// `maxAge` unused; a client network that passed `autoWhitelist` times skips it. State lives in
// the shared store only; times come from env.clock. No store, no pass: the answer is a 451.
import { z } from 'zod';
import { Duration } from '../config/units.ts';
import type { Mailbox } from '../core/address.ts';
import { Replies, temp } from '../core/reply.ts';
import { PASS, defer, type Verdict } from '../core/verdict.ts';
import { defineCheck } from '../pipeline/check.ts';
import type { Store } from '../store/store.ts';
import { domainKeys } from './lib/access-map.ts';
import { NetworkTable, networkOf, parseIp, parseNetwork, type Ip } from '../core/net.ts';
import { WatchedFile, type Parsed } from './lib/watched-file.ts';

const NAME = 'greylist';

const Options = z
  .object({
    /** How long a new triplet is refused before a retry is accepted. */
    delay: Duration.default(5 * 60_000),
    /** A triplet that passed, and an auto-whitelisted network, are forgotten after this long unused. */
    maxAge: Duration.default(35 * 86_400_000),
    /** A first sighting that was never retried successfully is forgotten after this long. */
    retryWindow: Duration.default(2 * 86_400_000),
    /** Whitelist a client network after this many passes (counted at most once an hour); 0: off. */
    autoWhitelist: z.number().int().min(0).default(5),
    /** The client network of a triplet: /24 for IPv4 and /64 for IPv6, as postgrey's --lookup-by-subnet. */
    ipv4Prefix: z.number().int().min(8).max(32).default(24),
    ipv6Prefix: z.number().int().min(16).max(128).default(64),
    whitelist: z
      .object({
        /** Client addresses or CIDR ranges that skip greylisting. */
        clients: z.array(z.string().min(1)).default([]),
        /** Sender addresses, domains or parent domains (.example.com) that skip greylisting. */
        senders: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .prefault({}),
    /** A file of whitelist entries, one per line: an address/CIDR (client) or an address/domain (sender). */
    whitelistFile: z.string().min(1).optional(),
  })
  .strict();

const greylisted = temp('4.2.0', 'Greylisted, please try again later');
const HOUR = 3_600_000;
const TOUCH_MS = 60_000;

interface Whitelist {
  readonly clients: NetworkTable<string>;
  readonly senders: ReadonlySet<string>;
}

const SENDER_KEY = /^(?:[^@\s]+@)?\.?[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?$/;

function parseWhitelist(entries: ReadonlyArray<readonly [string, string]>): Parsed<Whitelist> {
  const clients = new NetworkTable<string>();
  const senders = new Set<string>();
  const problems: string[] = [];
  for (const [text, where] of entries) {
    const t = text.trim().toLowerCase().replace(/\.$/, '');
    const net = parseNetwork(t);
    if (net) clients.add(net, t);
    else if (SENDER_KEY.test(t)) senders.add(t);
    else problems.push(`${where}: "${text}" is neither an IP address, a CIDR range, an address nor a domain`);
  }
  return { value: { clients, senders }, problems };
}

function fileEntries(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.replace(/#.*$/, '').trim();
    if (t !== '') out.push([t, `line ${i + 1}`]);
  });
  return out;
}

/**
 * postgrey's sender normalisation, so per-message senders (VERP, BATV) make one triplet: the
 * BATV tag `prvs=tag=user` becomes `user`, and each number standing alone in the local part
 * becomes `#`. The null sender is the empty string.
 */
export function normaliseSender(from: Mailbox | null): string {
  if (from === null) return '';
  let local = from.local.toLowerCase().replace(/^prvs=[^=]+=/, '');
  local = local.replace(/\b\d+\b/g, '#');
  return `${local}@${from.domain.toLowerCase()}`;
}

interface Triplet {
  readonly first: number;
  readonly last: number;
  readonly passed: boolean;
}

const readTriplet = (v: string | null): Triplet | undefined => {
  const m = v === null ? null : /^(\d+),(\d+),([01])$/.exec(v);
  return m ? { first: Number(m[1]), last: Number(m[2]), passed: m[3] === '1' } : undefined;
};
const writeTriplet = (t: Triplet): string => `${t.first},${t.last},${t.passed ? 1 : 0}`;

const readCount = (v: string | null): { count: number; last: number } | undefined => {
  const m = v === null ? null : /^(\d+),(\d+)$/.exec(v);
  return m ? { count: Number(m[1]), last: Number(m[2]) } : undefined;
};

export const greylist = defineCheck({
  name: NAME,
  stages: ['rcpt'],
  options: Options,
  create: (opts, env) => {
    const configured = parseWhitelist([
      ...opts.whitelist.clients.map((c, i) => [c, `whitelist.clients[${i}]`] as const),
      // The operator's own relay networks are never greylisted.
      ...(env.trustedNetworks ?? []).map((c, i) => [c, `relay.trustedNetworks[${i}]`] as const),
      ...opts.whitelist.senders.map((s, i) => [s, `whitelist.senders[${i}]`] as const),
    ]);
    if (configured.problems.length > 0) {
      throw new Error(`checks.${NAME}.${configured.problems.join('; ')}. Fix: list client addresses or CIDR ranges under whitelist.clients and sender addresses or domains under whitelist.senders`);
    }
    const file =
      opts.whitelistFile === undefined
        ? undefined
        : new WatchedFile({
            setting: `checks.${NAME}.whitelistFile`,
            check: NAME,
            path: opts.whitelistFile,
            parse: (text) => parseWhitelist(fileEntries(text)),
            fix: 'write one entry per line: a client address or CIDR range (192.0.2.0/24), or a sender address or domain (example.com, .example.com); "#" starts a comment',
            env,
          });

    // Per request: no arrays and no sender keys unless a list has entries to match them with.
    const listedIn = (w: Whitelist, ip: Ip, from: Mailbox | null): string | undefined => {
      if (w.clients.size > 0) {
        const net = w.clients.match(ip);
        if (net) return `client ${net.value}`;
      }
      if (from === null || w.senders.size === 0) return undefined;
      const s = [from.address.toLowerCase(), ...domainKeys(from.domain)].find((k) => w.senders.has(k));
      return s === undefined ? undefined : `sender ${s}`;
    };
    const whitelisted = async (ip: Ip, from: Mailbox | null): Promise<string | undefined> =>
      listedIn(configured.value, ip, from) ?? (file ? listedIn(await file.current(), ip, from) : undefined);

    const touchMs = Math.min(TOUCH_MS, opts.maxAge / 1000);
    const decide = async (store: Store, net: string, sender: string, rcpt: string): Promise<Verdict> => {
      const now = env.clock();
      const awlKey = `${NAME}:c:${net}`;
      if (opts.autoWhitelist > 0) {
        const awl = readCount(await store.get(awlKey));
        if (awl && awl.count >= opts.autoWhitelist && now - awl.last <= opts.maxAge) {
          // Keep a busy whitelisted network alive, writing at most once an hour.
          if (now - awl.last >= HOUR) await store.set(awlKey, `${awl.count},${now}`, opts.maxAge);
          return PASS;
        }
      }
      // JSON keeps the three parts apart whatever characters an address holds.
      const key = `${NAME}:t:${JSON.stringify([net, sender, rcpt])}`;
      let t = readTriplet(await store.get(key));
      // Forgotten: passed but unused for maxAge, or never retried within the retry window.
      if (t && (t.passed ? now - t.last > opts.maxAge : now - t.first > opts.retryWindow)) t = undefined;
      if (!t) {
        const fresh = writeTriplet({ first: now, last: now, passed: false });
        // The store's TTL only clears out old rows; the decision uses the stored times.
        await store.set(key, fresh, opts.retryWindow + opts.delay);
        // At debug: the deferred decision line names the triplet and the reason already.
        env.log.debug({ check: NAME, net, sender, rcpt, retryAfterS: Math.ceil(opts.delay / 1000) }, 'greylisted: first sight');
        return defer(greylisted, `greylisted: new triplet ${net} <${sender}> <${rcpt}>`);
      }
      if (!t.passed && now - t.first < opts.delay) {
        const left = Math.ceil((t.first + opts.delay - now) / 1000);
        env.log.debug({ check: NAME, net, sender, rcpt, retryAfterS: left }, 'greylisted: retried too early');
        return defer(greylisted, `greylisted: retried too early (${left}s left) ${net} <${sender}> <${rcpt}>`);
      }
      // `last` only sets when a passed triplet is forgotten (maxAge unused): rewritten at most once
      // a minute, a busy triplet costs no store write per request and its expiry moves by less
      // than a minute in 35 days (decision 0046).
      if (!t.passed || now - t.last >= touchMs) await store.set(key, writeTriplet({ first: t.first, last: now, passed: true }), opts.maxAge);
      if (!t.passed) env.log.info({ check: NAME, net, sender, rcpt, waitedS: Math.round((now - t.first) / 1000) }, 'greylisting passed');
      if (opts.autoWhitelist > 0) {
        const awl = readCount(await store.get(awlKey));
        const fresh = !awl || now - awl.last > opts.maxAge;
        // postgrey counts a client at most once an hour, so one burst of mail is one pass.
        if (fresh || now - awl.last >= HOUR) {
          const count = fresh ? 1 : awl.count + 1;
          await store.set(awlKey, `${count},${now}`, opts.maxAge);
          if (count === opts.autoWhitelist) env.log.info({ check: NAME, net, passes: count }, 'client network auto-whitelisted');
        }
      }
      return PASS;
    };

    return {
      rcpt: async (ctx, rcpt) => {
        if (ctx.session.login !== undefined) return PASS;
        const ip = parseIp(ctx.session.clientAddress);
        if (!ip) {
          env.log.warn({ check: NAME, client: ctx.session.clientAddress }, 'client address is not an IP address; not greylisted');
          return PASS;
        }
        const from = ctx.tx?.mailFrom ?? null;
        const listed = await whitelisted(ip, from);
        if (listed) {
          env.log.debug({ check: NAME, client: ctx.session.clientAddress, whitelisted: listed }, 'greylisting skipped: whitelisted');
          return PASS;
        }
        const net = networkOf(ip, opts.ipv4Prefix, opts.ipv6Prefix);
        try {
          return await decide(env.store, net, normaliseSender(from), rcpt.address.toLowerCase());
        } catch (err) {
          // Without its memory greylisting cannot tell a retry from a first try: defer, never pass.
          env.log.warn({ check: NAME, err: err instanceof Error ? err.message : String(err) }, 'greylisting store unavailable; deferring');
          return defer(Replies.tempFailure, `greylisting store unavailable: ${err instanceof Error ? err.message : String(err)}`);
        }
      },
    };
  },
});
