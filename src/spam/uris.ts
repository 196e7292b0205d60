// The web sites a message points to, for the URI blocklists (checks/uribl.ts): URLs and domains
// found in the text and HTML after the hiding is undone — defanged schemes (hxxp://), defanged
// dots ("example[.]com", "example dot com"), percent- and entity-encoded host names — reduced to
// the registrable domain by the Public Suffix List (a list is asked about "example.co.uk", not
// "www.shop.example.co.uk"), and links to bare IPv4 addresses as addresses.
import { domainToASCII } from 'node:url';
import { parse } from 'tldts';
import { decodeEntities } from './html.ts';
import { parseMessage } from './mime.ts';
import { normaliseText } from './normalise.ts';

export interface UriTargets {
  /** Registrable domains, lower-case ASCII (A-labels), in the order of evidence: links first,
   * then URLs in the text, then bare domains and e-mail domains in the text. */
  readonly domains: readonly string[];
  /** IPv4 addresses that links point to. */
  readonly ips: readonly string[];
}

// Schemes written so that mail programs do not make a link of them: hxxp, hXXp, h**p, h__p,
// with the colon in brackets ("hxxps[:]//", "http[://]").
const DEFANGED_SCHEME = /\bh(?:xx|tt|\*\*|__)p(s?)\s*(?:\[:\/\/\]|\(:\/\/\)|(?:\[:\]|\(:\)|:)\s*\/\/)/gi;
// Dots written as "[.]", "(.)", "{.}", "[dot]", "(dot)", " dot " between two labels.
const DEFANGED_DOT = /\s*(?:\[\s*(?:\.|dot)\s*\]|\(\s*(?:\.|dot)\s*\)|\{\s*(?:\.|dot)\s*\})\s*/gi;
const SPOKEN_DOT = /(?<=[a-z0-9])\s+dot\s+(?=[a-z0-9])/gi;
const URL = /\b(?:https?|ftp):\/\/([^\s/?#<>"'`\\]+)/gi;
const WWW = /(?<![\w.-])www\d{0,3}\.[^\s/?#<>"'`\\]+/gi;
const BARE = /(?<![\w.@%/=-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}(?:[a-z]{2,24}|xn--[a-z0-9-]{1,59})(?![\w-]|\.[a-z0-9])/gi;
const MAIL_DOMAIN = /(?<=[\w.+-]@)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}[a-z]{2,24}\b/gi;
const DOTTED_V4 = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/;

/** Undoes the defanging of URLs and dots in a text ("hxxp://evil[.]example" → "http://evil.example"). */
export function refang(text: string): string {
  let t = text.replace(DEFANGED_SCHEME, (_m, s: string) => `http${s}://`);
  t = t.replace(DEFANGED_DOT, '.');
  return t.replace(SPOKEN_DOT, '.');
}

/** The host part of a URL's authority, decoded: no user info, port or final dot; %XX and
 * character references undone; a Unicode name as its A-labels. */
function hostOf(authority: string): string | undefined {
  let h = authority;
  const at = h.lastIndexOf('@');
  if (at >= 0) h = h.slice(at + 1);
  if (h.includes('%')) {
    try {
      h = decodeURIComponent(h);
    } catch {
      return undefined;
    }
  }
  if (h.includes('&')) h = decodeEntities(h);
  h = h
    .replace(/:\d*$/, '')
    .replace(/[.,;:!)\]}>]+$/, '')
    .toLowerCase();
  if (h.length === 0 || h.length > 253) return undefined;
  if (/^\d+$/.test(h)) {
    // A host written as one number ("http://3232235777/") is an IPv4 address to browsers.
    const n = Number(h);
    return n > 0 && n <= 0xffffffff ? [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.') : undefined;
  }
  if (/[^\x00-\x7f]/.test(h)) h = domainToASCII(h);
  return h.length > 0 ? h : undefined;
}

class Collector {
  readonly domains: string[] = [];
  readonly ips: string[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly max: number) {}

  get full(): boolean {
    return this.domains.length + this.ips.length >= this.max;
  }

  /** A host from a URL or a bare name; `bare`: only a name under a known public suffix counts. */
  add(host: string | undefined, bare: boolean): void {
    if (host === undefined || this.full) return;
    if (DOTTED_V4.test(host)) {
      if (!bare && !this.seen.has(host)) {
        this.seen.add(host);
        this.ips.push(host);
      }
      return;
    }
    const p = parse(host, { allowPrivateDomains: true, extractHostname: false });
    // A name under no known suffix ("file.txt" has none; "readme.md" has one, Moldova's) is not
    // a web site when it stands bare in the text.
    if (p.domain === null || p.isIp === true || (bare && p.isIcann !== true && p.isPrivate !== true)) return;
    const d = p.domain;
    if (!this.seen.has(d)) {
      this.seen.add(d);
      this.domains.push(d);
    }
  }
}

/** The hosts a message's text and links name, at most `max` distinct targets. */
export function uriTargets(text: string, links: readonly string[], max = 50): UriTargets {
  const out = new Collector(max);
  for (const link of links) {
    const l = refang(decodeEntities(link.trim()));
    const m = /^(?:(?:https?|ftp):)?\/\/([^/?#\s\\]+)/i.exec(l);
    if (m) out.add(hostOf(m[1]!), false);
    else if (/^mailto:/i.test(l)) out.add(/@([^?&\s>]+)/.exec(l)?.[1]?.toLowerCase(), true);
  }
  const t = refang(text.includes('&') ? decodeEntities(text) : text);
  for (const m of t.matchAll(URL)) out.add(hostOf(m[1]!), false);
  for (const m of t.matchAll(WWW)) out.add(hostOf(m[0]), false);
  for (const m of t.matchAll(BARE)) out.add(m[0].toLowerCase(), true);
  for (const m of t.matchAll(MAIL_DOMAIN)) out.add(m[0].toLowerCase(), true);
  return { domains: out.domains, ips: out.ips };
}

/** Reads a message (its first `maxBytes`) and returns the hosts it points to. */
export function messageUriTargets(raw: Buffer | string, maxBytes: number, max = 50): UriTargets {
  const msg = parseMessage(raw, { maxBytes });
  const text = msg.plain && msg.html ? `${msg.plain}\n${msg.html}` : msg.plain || msg.html;
  return uriTargets(normaliseText(text).text, msg.links, max);
}
