// Reads Received header fields (RFC 5321 §4.4: "from <helo> (<rdns> [<ip>]) by <host> …;
// <date>") and knows which relays belong to the big free mail providers, for the tokenizer and
// for the rules that check a message's claimed origin against its path.

export interface Hop {
  /** The name the sending client gave (HELO/EHLO), lower-case. */
  readonly helo?: string;
  /** The client's reverse DNS name as the receiving server recorded it. */
  readonly rdns?: string;
  readonly ip?: string;
  /** The receiving server. */
  readonly by?: string;
  /** When the receiving server took the message (ms since the epoch); read on first use. */
  readonly time?: number;
}

export function parseReceived(value: string): Hop {
  const v = value.toLowerCase();
  const m = /\bfrom\s+([^\s();]+)(?:\s*\(([^)]*)\))?/.exec(v);
  const inner = m?.[2] ?? '';
  const rdns = /^\s*([a-z0-9.-]+\.[a-z]{2,})\b/.exec(inner)?.[1];
  const ip = /\[(?:ipv6:)?([0-9a-f.:]+)\]/.exec(v)?.[1];
  const by = /\bby\s+([a-z0-9.-]+)/.exec(v)?.[1];
  const helo = m?.[1]?.replace(/^\[|\]$/g, '');
  const hop: { helo?: string; rdns?: string; ip?: string; by?: string; time?: number } = {};
  if (helo) hop.helo = helo;
  if (rdns) hop.rdns = rdns;
  if (ip) hop.ip = ip;
  if (by) hop.by = by;
  // Dates are read only when a rule asks: most messages need one hop's at most.
  let time: number | undefined | null = null;
  Object.defineProperty(hop, 'time', {
    enumerable: true,
    get(): number | undefined {
      if (time === null) {
        const semi = value.lastIndexOf(';');
        time = semi >= 0 ? parseDate(value.slice(semi + 1)) : undefined;
      }
      return time;
    },
  });
  return hop;
}

/** RFC 5322 §3.3 date-time (comments dropped); undefined when unreadable. */
export function parseDate(text: string): number | undefined {
  const t = Date.parse(text.replace(/\([^()]*\)/g, ' ').trim());
  return Number.isNaN(t) ? undefined : t;
}

/** The last two labels (three under a country code's registry label, as example.co.uk): near
 * enough to an organisation's domain for comparing names. */
export function baseDomain(domain: string): string {
  const l = domain.toLowerCase().replace(/\.$/, '').split('.');
  const n = l.length >= 3 && l[l.length - 1]!.length === 2 && SECOND_LEVEL.has(l[l.length - 2]!) ? 3 : 2;
  return l.slice(-n).join('.');
}

// Second-level labels under which country domains register names (co.uk, com.br, ne.jp …).
const SECOND_LEVEL = new Set(['co', 'com', 'net', 'org', 'ac', 'gov', 'edu', 'ne', 'or', 'go', 'gob', 'mil', 'nom', 'ltd', 'plc', 'sch', 'gen', 'biz', 'info']);

// Free mail providers and the base domains their outgoing relays are named in. Mail from such
// an address that never passed one of them was not sent through the provider: the address is
// borrowed. Families are matched by the provider's own label (yahoo.co.uk, hotmail.fr …).
const FAMILIES: Readonly<Record<string, readonly string[]>> = {
  yahoo: ['yahoo.com', 'yahoo.net', 'yahoodns.net'],
  ymail: ['yahoo.com', 'yahoo.net', 'yahoodns.net'],
  rocketmail: ['yahoo.com', 'yahoo.net', 'yahoodns.net'],
  hotmail: ['hotmail.com', 'msn.com', 'outlook.com', 'live.com'],
  msn: ['hotmail.com', 'msn.com', 'outlook.com', 'live.com'],
  live: ['hotmail.com', 'msn.com', 'outlook.com', 'live.com'],
  outlook: ['hotmail.com', 'msn.com', 'outlook.com', 'live.com'],
  aol: ['aol.com', 'aol.net'],
  aim: ['aol.com', 'aol.net'],
  gmail: ['google.com', 'gmail.com'],
  googlemail: ['google.com', 'gmail.com', 'googlemail.com'],
  icloud: ['icloud.com', 'me.com', 'apple.com'],
  me: ['icloud.com', 'me.com', 'apple.com', 'mac.com'],
  mac: ['icloud.com', 'me.com', 'apple.com', 'mac.com'],
  gmx: ['gmx.net', 'gmx.de', 'gmx.com'],
  mail: ['mail.com', 'gmx.net', 'mail.ru'],
  email: ['mail.com', 'gmx.net', 'email.com'],
  yandex: ['yandex.ru', 'yandex.net', 'yandex.com'],
  proton: ['proton.me', 'protonmail.ch', 'protonmail.com'],
  protonmail: ['proton.me', 'protonmail.ch', 'protonmail.com'],
  netscape: ['netscape.net', 'netscape.com', 'aol.com'],
  lycos: ['lycos.com', 'lycos.co.uk', 'lycos.de', 'lycos.es'],
  eudoramail: ['eudoramail.com', 'lycos.com', 'whowhere.com'],
  excite: ['excite.com', 'excite.co.uk'],
  juno: ['juno.com', 'untd.com'],
  netzero: ['netzero.net', 'netzero.com', 'untd.com'],
};
// Other free mail domains: their relays carry their own name.
const FREEMAIL_DOMAINS = new Set([
  'web.de', 'freenet.de', 't-online.de', 'zoho.com', 'zohomail.com', 'tutanota.com', 'fastmail.com', 'mail.ru', 'rambler.ru',
  'inbox.ru', 'bk.ru', 'list.ru', 'rediffmail.com', 'indiatimes.com', 'earthlink.net', 'usa.net', 'caramail.com',
  'flashmail.com', 'bigfoot.com', 'freemail.nl', 'bluemail.dk', 'terra.es', 'terra.com.br', 'bol.com.br', 'uol.com.br',
  'libero.it', 'virgilio.it', 'tiscali.it', 'tiscali.co.uk', 'laposte.net', 'orange.fr', 'wanadoo.fr', 'free.fr', 'sfr.fr',
  'o2.pl', 'wp.pl', 'interia.pl', 'onet.pl', 'seznam.cz', 'centrum.cz', 'walla.co.il', '163.com', '126.com', 'yeah.net',
  'sina.com', 'sina.cn', 'sohu.com', 'qq.com', 'foxmail.com', '21cn.com', 'tom.com', 'hanmail.net', 'daum.net', 'naver.com',
  'nate.com', 'hinet.net', 'btamail.net.cn', 'mail2world.com', 'inbox.com', 'hushmail.com', 'mailinator.com', 'gawab.com',
]);

function providerRelays(domain: string): readonly string[] | undefined {
  const base = baseDomain(domain);
  const family = FAMILIES[base.split('.')[0]!];
  if (family) return [...family, base];
  return FREEMAIL_DOMAINS.has(base) ? [base] : undefined;
}

export function isFreemail(domain: string): boolean {
  return providerRelays(domain) !== undefined;
}

/** For an address at a free mail provider: did any hop come from the provider's relays?
 * Undefined when the domain is not a free mail provider's. */
export function viaProvider(domain: string, hops: readonly Hop[]): boolean | undefined {
  const relays = providerRelays(domain);
  if (!relays) return undefined;
  return hops.some((h) => [h.helo, h.rdns, h.by].some((n) => n !== undefined && n.includes('.') && relays.includes(baseDomain(n))));
}
