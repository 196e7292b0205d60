// The DNS records a mail domain served by this config should publish, computed from the config
// and the files it names: MX, the mail host's A/AAAA, SPF, each DKIM key, DMARC, MTA-STS,
// TLS-RPT, TLSA (DANE) from the current certificate, and the PTR to ask the hoster for. Printed
// by `mailward dns records` in zone-file form and checked against live answers by `doctor --dns`.
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import type { Config } from '../config/load.ts';
import { policyId, type MtaStsPolicy } from '../core/mta-sts.ts';
import { dkimKeyFiles, dkimRecordValue } from '../delivery/dkim-sign.ts';
import { isPrivateHost, ownAddresses } from './networks.ts';
import { configPath } from './audit-machine.ts';

export type RecordType = 'MX' | 'A' | 'AAAA' | 'TXT' | 'TLSA' | 'PTR' | 'CNAME';

export interface DnsRecord {
  /** Absolute owner name, without the trailing dot. */
  readonly name: string;
  readonly type: RecordType;
  /** The record data as a zone file writes it (TXT: the text itself, unquoted). Undefined when
   *  only the operator knows it (the server's public address): then `hint` says what to put. */
  readonly value?: string;
  /** What the record is for; printed as a comment above it. */
  readonly why: string;
  /** Instead of a value: what to write (e.g. "this server's public IPv4 address"). */
  readonly hint?: string;
  /** Not in your zone: ask the owner of the address block (your hoster) to set it. */
  readonly external?: boolean;
}

/** The policy this server serves at https://mta-sts.<domain>/.well-known/mta-sts.txt. */
export function servedPolicy(config: Pick<Config, 'hostname' | 'mtaSts'>): MtaStsPolicy {
  const s = config.mtaSts.serve;
  return { mode: s.mode, mx: s.mx.length > 0 ? s.mx : [config.hostname], maxAge: Math.round(s.maxAge / 1000) };
}

/** Where DMARC and TLS-RPT reports about `domain` are to be sent. */
export const reportAddress = (config: Pick<Config, 'reports'>, domain: string): string => config.reports.address ?? `postmaster@${domain}`;

/** The certificate served on the MX port: tls.cert, else the self-signed one made in dataDir. */
export function currentCertificate(config: Pick<Config, 'tls' | 'paths'>): { readonly file: string; readonly cert: X509Certificate } | undefined {
  const file = config.tls.cert ?? path.join(config.paths.tls, 'selfsigned-cert.pem');
  if (!existsSync(file)) return undefined;
  try {
    return { file, cert: new X509Certificate(readFileSync(file)) };
  } catch {
    return undefined;
  }
}

/** TLSA "3 1 1" data: DANE-EE, the SubjectPublicKeyInfo, SHA-256 (RFC 7671 §5.1, RFC 7672 §3.1.1). */
export function tlsaValue(cert: X509Certificate): string {
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `3 1 1 ${createHash('sha256').update(spki).digest('hex')}`;
}

/** The reverse-lookup name of an address (RFC 1035 §3.5, RFC 3596 §2.5). */
export function reverseName(ip: string): string {
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const [head = '', tail] = ip.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return `${[...groups.map((g) => g.padStart(4, '0')).join('')].reverse().join('.')}.ip6.arpa`;
}

const isPublic = (ip: string): boolean => (isIPv4(ip) || isIPv6(ip)) && !isPrivateHost(ip) && !/^(127\.|::1$|0\.0\.0\.0$|::$|fe80:)/i.test(ip);

/**
 * The server's public addresses as far as this machine can tell: the MX listeners' own addresses,
 * else its interfaces' public ones. Behind NAT none is found: `--ip` names them.
 */
export function publicAddresses(config: Pick<Config, 'listeners'>): string[] {
  const fromListeners = config.listeners.filter((l) => l.kind === 'mx').map((l) => l.host).filter(isPublic);
  if (fromListeners.length > 0) return [...new Set(fromListeners)];
  return [...new Set(ownAddresses().map((a) => a.address).filter(isPublic))];
}

export interface RecordOptions {
  /** The server's public addresses (default: publicAddresses(config)). */
  readonly addresses?: readonly string[];
}

/** Every record `domain` should publish for this config, in the order a zone file reads well. */
export function expectedRecords(config: Config, domain: string, opts: RecordOptions = {}): DnsRecord[] {
  const host = config.hostname.toLowerCase().replace(/\.$/, '');
  const addrs = opts.addresses ?? publicAddresses(config);
  const rua = reportAddress(config, domain);
  const out: DnsRecord[] = [{ name: domain, type: 'MX', value: `10 ${host}.`, why: `mail for ${domain} goes to this server (RFC 5321 §5.1)` }];
  const v4 = addrs.filter((a) => isIPv4(a));
  const v6 = addrs.filter((a) => isIPv6(a));
  const hostInDomain = host === domain || host.endsWith(`.${domain}`);
  if (hostInDomain || addrs.length > 0) {
    for (const a of v4) out.push({ name: host, type: 'A', value: a, why: `the address of the mail host ${host}` });
    for (const a of v6) out.push({ name: host, type: 'AAAA', value: a, why: `the IPv6 address of the mail host ${host}` });
    if (v4.length === 0) out.push({ name: host, type: 'A', why: `the address of the mail host ${host}`, hint: "this server's public IPv4 address (give it with --ip when behind NAT)" });
  }
  // SPF (RFC 7208): the domain's mail leaves from its MX; "-all" so receivers may refuse forgeries.
  out.push({ name: domain, type: 'TXT', value: 'v=spf1 mx -all', why: `SPF: only the MX hosts of ${domain} send its mail (RFC 7208)` });
  // The HELO identity is checked too (RFC 7208 §2.3); a host record of its own covers it.
  if (hostInDomain && host !== domain) out.push({ name: host, type: 'TXT', value: 'v=spf1 a -all', why: `SPF for the HELO name ${host} (RFC 7208 §2.3)` });
  const dkimDir = path.join(config.dataDir, 'dkim');
  const configured = config.delivery.dkim.keys[domain];
  const keys = dkimKeyFiles(dkimDir, domain).map((k) => ({ ...k }));
  if (configured) keys.unshift({ selector: configured.selector, file: configured.keyFile ? configPath(config, configured.keyFile) : path.join(dkimDir, `${domain}.${configured.selector}.key`) });
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k.selector)) continue;
    seen.add(k.selector);
    let value: string | undefined;
    try {
      value = dkimRecordValue(readFileSync(k.file, 'utf8'));
    } catch {
      continue; // doctor's DKIM audit names an unusable key file
    }
    out.push({ name: `${k.selector}._domainkey.${domain}`, type: 'TXT', value, why: `DKIM public key of selector ${k.selector} (RFC 6376 §3.6.1)` });
  }
  if (seen.size === 0) out.push({ name: `<selector>._domainkey.${domain}`, type: 'TXT', why: 'DKIM public key', hint: `run "mailward dkim keygen ${domain}" first; it prints this record` });
  out.push({ name: `_dmarc.${domain}`, type: 'TXT', value: `v=DMARC1; p=quarantine; rua=mailto:${rua}`, why: 'DMARC: what receivers do with mail failing SPF and DKIM alignment, and where they send daily reports (RFC 7489 §6.3)' });
  if (config.mtaSts.serve.enabled) {
    out.push({ name: `mta-sts.${domain}`, type: 'CNAME', value: `${host}.`, why: 'the MTA-STS policy host: this server serves the policy over HTTPS (its certificate must name it, RFC 8461 §3.3)' });
    out.push({ name: `_mta-sts.${domain}`, type: 'TXT', value: `v=STSv1; id=${policyId(servedPolicy(config))}`, why: `MTA-STS (RFC 8461 §3.1): senders fetch the ${config.mtaSts.serve.mode} policy; the id changes with the policy` });
  }
  out.push({ name: `_smtp._tls.${domain}`, type: 'TXT', value: `v=TLSRPTv1; rua=mailto:${rua}`, why: 'TLS-RPT (RFC 8460 §3): where senders report failed TLS to your MX' });
  const cert = currentCertificate(config);
  if (cert) out.push({ name: `_25._tcp.${host}`, type: 'TLSA', value: tlsaValue(cert.cert), why: `DANE (RFC 7672): the key of ${cert.file}; publish only in a DNSSEC-signed zone, and publish the next key before a renewal changes it` });
  for (const a of addrs) out.push({ name: reverseName(a), type: 'PTR', value: `${host}.`, why: `reverse DNS of ${a}: many receivers refuse mail from an address whose PTR does not name the host`, external: true });
  if (addrs.length === 0) out.push({ name: '<reverse of your public address>', type: 'PTR', value: `${host}.`, why: 'reverse DNS of the server address', hint: `ask your hoster to set the PTR of the server's public address to ${host}.`, external: true });
  return out;
}

/** One TXT text as zone-file strings of at most 255 octets each (RFC 1035 §3.3.14). */
function quoted(text: string): string {
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += 255) parts.push(`"${text.slice(i, i + 255)}"`);
  return parts.length > 1 ? `( ${parts.join(' ')} )` : (parts[0] ?? '""');
}

/** Zone-file lines: a comment with the reason, then the record (commented out when only a hint). */
export function formatRecords(records: readonly DnsRecord[]): string {
  const lines: string[] = [];
  for (const r of records) {
    lines.push(`; ${r.external ? '[ask your hoster, not in your zone] ' : ''}${r.why}`);
    const data = r.value === undefined ? `<${r.hint ?? '?'}>` : r.type === 'TXT' ? quoted(r.value) : r.value;
    const line = `${r.name}. IN ${r.type} ${data}`;
    lines.push(r.value === undefined || r.name.startsWith('<') || r.external ? `; ${line}` : line);
    if (r.hint && r.value !== undefined) lines.push(`; ${r.hint}`);
  }
  return `${lines.join('\n')}\n`;
}
