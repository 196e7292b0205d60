// `mailward doctor --dns`: asks the configured DNS servers for each record `dns records` says to
// publish and names every one that is missing or wrong, with the record to publish as the fix.
// Records written by hand may differ (a longer SPF, a stricter DMARC): only what breaks mail or
// a policy is an error.
import { Resolver } from 'node:dns/promises';
import { isIPv4 } from 'node:net';
import type { Config } from '../config/load.ts';
import { stsIdOf, tagList } from '../core/mta-sts.ts';
import { DaneResolver, type Unvalidated } from '../delivery/tls-policy/dane.ts';
import { parseServer } from '../delivery/tls-policy/dns-wire.ts';
import { silentLogger } from '../observe/log.ts';
import { expectedRecords, formatRecords, reverseName, type DnsRecord, type RecordOptions } from './dns-records.ts';
import type { Finding, Severity } from './finding.ts';

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}
const absent = (err: unknown): boolean => ['ENODATA', 'ENOTFOUND'].includes(codeOf(err));

/** A resolver as the server builds one: the configured servers, time-out and tries. */
export function configuredResolver(config: Pick<Config, 'dns'>): Resolver {
  const r = new Resolver({ timeout: config.dns.timeout, tries: config.dns.tries });
  if (config.dns.servers.length > 0) r.setServers([...config.dns.servers]);
  return r;
}

type Lookup<T> = { ok: true; value: T } | { ok: false; finding: Finding };

async function ask<T>(what: string, fn: () => Promise<T>, empty: T): Promise<Lookup<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    if (absent(err)) return { ok: true, value: empty };
    return { ok: false, finding: { id: 'dns-lookup-failed', severity: 'warning', setting: `DNS ${what}`, message: `the lookup failed (${codeOf(err)}), so this record was not checked`, fix: 'check dns.servers and that the DNS server answers, then run doctor --dns again' } };
  }
}

function finding(r: DnsRecord, id: string, severity: Severity, message: string, fix?: string): Finding {
  const line = formatRecords([r]).trim().split('\n').pop()!.replace(/^; /, '');
  return { id, severity, setting: `DNS ${r.name} ${r.type}`, message, fix: fix ?? `publish ${line}` };
}

async function txt(dns: Resolver, name: string): Promise<Lookup<string[]>> {
  const l = await ask(`${name} TXT`, () => dns.resolveTxt(name), [] as string[][]);
  return l.ok ? { ok: true, value: l.value.map((chunks) => chunks.join('')) } : l;
}

/**
 * What the audit knows of the mail host before it checks records: its CNAME chain (RFC 1034
 * §3.6.2; `chain[0]` is config.hostname, the last name the one holding the addresses) and its
 * live addresses, reached through that chain.
 */
interface HostFacts {
  readonly host: string;
  readonly chain: readonly string[];
  readonly addresses: readonly string[];
}

const bare = (name: string): string => name.toLowerCase().replace(/\.$/, '');

/** The CNAME chain from `name`, asked one step at a time (node's resolver hides the chain). */
async function aliasChain(dns: Resolver, name: string): Promise<string[]> {
  const chain = [bare(name)];
  for (let hop = 0; hop < 8; hop++) {
    const l = await ask(`${chain[chain.length - 1]!} CNAME`, () => dns.resolveCname(chain[chain.length - 1]!), []);
    const next = l.ok && l.value[0] !== undefined ? bare(l.value[0]) : undefined;
    if (next === undefined || chain.includes(next)) break;
    chain.push(next);
  }
  return chain;
}

async function hostFacts(config: Config, dns: Resolver): Promise<HostFacts> {
  const host = bare(config.hostname);
  const addresses: string[] = [];
  for (const fn of [() => dns.resolve4(host), () => dns.resolve6(host)]) {
    const l = await ask(`${host} address`, fn, []);
    if (l.ok) addresses.push(...l.value);
  }
  return { host, chain: await aliasChain(dns, host), addresses };
}

/** "mx.example.org (a CNAME to host.provider.net)" when it is one, else the name. */
const described = (h: HostFacts): string => (h.chain.length > 1 ? `${h.host} (a CNAME to ${h.chain[h.chain.length - 1]!})` : h.host);

/**
 * RFC 2181 §10.3 (and RFC 5321 §5.1): the name an MX record gives must have address records of
 * its own, not be an alias. Senders mostly cope, but some refuse, and DANE then looks for TLSA
 * records at the CNAME's target first (RFC 7672 §2.2.2), in a zone the operator may not control.
 */
function mxAlias(r: DnsRecord, h: HostFacts): Finding[] {
  if (h.chain.length < 2) return [];
  const target = h.chain[h.chain.length - 1]!;
  const own = h.addresses.map((a) => `${h.host}. IN ${isIPv4(a) ? 'A' : 'AAAA'} ${a}`).join(' and ') || `${h.host}. IN A <its address>`;
  return [{ id: 'dns-mx-cname', severity: 'warning', setting: `DNS ${r.name} MX`, message: `the MX of ${r.name} names ${described(h)}: an MX must name a host with its own address records, not an alias (RFC 2181 §10.3), and some senders refuse such mail`, fix: `replace the CNAME ${h.host}. IN CNAME ${target}. with ${own}` }];
}

/** Checks one expected record against the live answers. */
async function checkRecord(config: Config, dns: Resolver, h: HostFacts, r: DnsRecord): Promise<Finding[]> {
  const host = h.host;
  switch (r.type) {
    case 'MX': {
      const l = await ask(`${r.name} MX`, () => dns.resolveMx(r.name), []);
      if (!l.ok) return [l.finding];
      if (l.value.some((m) => bare(m.exchange) === host)) return mxAlias(r, h);
      const now = l.value.map((m) => `${m.priority} ${m.exchange}`).join(', ');
      return [finding(r, 'dns-mx-missing', 'error', l.value.length === 0 ? `${r.name} has no MX record: mail for it cannot reach ${host}` : `the MX records of ${r.name} (${now}) do not name ${host}`)];
    }
    case 'A':
    case 'AAAA': {
      // The resolver follows a CNAME at the host name: these are the addresses senders connect to.
      const l = await ask(`${r.name} ${r.type}`, () => (r.type === 'A' ? dns.resolve4(r.name) : dns.resolve6(r.name)), []);
      if (!l.ok) return [l.finding];
      const name = r.name === host ? described(h) : r.name;
      // A CNAME cannot stand beside other data (RFC 1034 §3.6.2): the fix replaces it.
      const fix = r.name === host && h.chain.length > 1 ? `replace the CNAME ${host}. IN CNAME ${h.chain[h.chain.length - 1]!}. with ${formatRecords([r]).trim().split('\n').pop()!.replace(/^; /, '')}` : undefined;
      if (r.value === undefined) return l.value.length > 0 ? [] : [finding(r, 'dns-address-missing', 'error', `the mail host ${name} has no A record: no one can connect to it`, fix)];
      if (l.value.includes(r.value)) return [];
      return [finding(r, 'dns-address-wrong', 'error', l.value.length === 0 ? `${name} has no ${r.type} record` : `${name} points to ${l.value.join(', ')}, not to this server's ${r.value}`, fix)];
    }
    case 'TXT':
      return checkTxt(dns, r);
    case 'CNAME': {
      // The policy host may be a CNAME or its own A/AAAA: what matters is that it resolves.
      const l = await ask(`${r.name} A`, () => dns.resolve4(r.name), []);
      if (!l.ok) return [l.finding];
      const l6 = l.value.length > 0 ? l : await ask(`${r.name} AAAA`, () => dns.resolve6(r.name), []);
      if (!l6.ok) return [l6.finding];
      return l6.value.length > 0 ? [] : [finding(r, 'dns-mta-sts-host-missing', 'error', `${r.name} does not resolve: senders cannot fetch the MTA-STS policy the _mta-sts record announces`)];
    }
    case 'TLSA':
      return checkTlsa(config, r);
    case 'PTR':
      return []; // checked against the live addresses below
  }
}

/** A TLSA lookup that failed: not checked; SERVFAIL from a validating resolver usually means bogus. */
function tlsaLookupFailed(host: string, setting: string, reason: string): Finding {
  // RFC 4035 §5.5: a validating resolver answers SERVFAIL for data whose signatures fail.
  const bogus = / SERVFAIL /.test(reason) ? `; from a validating resolver SERVFAIL usually means the zone's signatures do not validate (bogus), and senders using DANE then defer all mail to ${host}` : '';
  return { id: 'dns-lookup-failed', severity: 'warning', setting, message: `${reason}, so this record was not checked${bogus}`, fix: `check dns.servers${bogus ? ', and the DNSSEC signatures and DS record of the zone of ' + host + ' (e.g. delv or dnsviz.net)' : ''}, then run doctor --dns again` };
}

/**
 * The TLSA record of the mail host (DANE, RFC 7672), found where a sender looks for it: when the
 * host name is a CNAME whose every step is signed, at the target's _25._tcp name first and then
 * at the host name's own (§2.2.2). It must be published, DNSSEC-validated — the AD bit of the
 * configured resolver, believed only from one delivery.dane would believe (on loopback or in
 * delivery.dane.trustedResolvers, as outbound DANE does) — with signed address records (else
 * senders skip DANE, §2.2.2), and match the current key.
 */
async function checkTlsa(config: Config, r: DnsRecord): Promise<Finding[]> {
  const host = bare(config.hostname);
  const dane = new DaneResolver({ servers: config.dns.servers, trustedResolvers: config.delivery.dane.trustedResolvers, timeoutMs: config.dns.timeout, log: silentLogger() });
  const setting = `DNS ${r.name} TLSA`;
  const a = await dane.addresses(host);
  if (a.kind === 'failed') return [tlsaLookupFailed(host, setting, a.reason)];
  const target = a.chain[a.chain.length - 1]!;
  const bases = a.chainSecure && target !== host ? [target, host] : [host];
  let found: { owner: string; kind: 'secure' | 'insecure'; records: readonly string[]; unvalidated?: Unvalidated } | undefined;
  for (const base of bases) {
    const t = await dane.tlsa(`_25._tcp.${base}`);
    if (t.kind === 'failed') return [tlsaLookupFailed(host, setting, t.reason)];
    if (t.records.length > 0) {
      found = { owner: `_25._tcp.${base}`, ...t };
      break;
    }
  }
  if (!found) return [finding(r, 'dns-tlsa-missing', 'info', `no TLSA record: senders cannot use DANE (RFC 7672) to authenticate ${host}`, `in a DNSSEC-signed zone, publish ${r.name}. IN TLSA ${r.value}`)];
  const out: Finding[] = [];
  if (!found.records.some((x) => x.toLowerCase() === r.value!.toLowerCase())) {
    out.push(
      found.owner === r.name
        ? finding(r, 'dns-tlsa-mismatch', 'error', `the TLSA records (${found.records.join(', ')}) match no key of the current certificate: senders using DANE refuse to deliver`, `replace them with ${r.name}. IN TLSA ${r.value} (and publish the next key before each renewal)`)
        : finding(r, 'dns-tlsa-mismatch', 'error', `${host} is a CNAME to ${target}, so senders use the TLSA records at ${found.owner} first (RFC 7672 §2.2.2), and they (${found.records.join(', ')}) match no key of the current certificate: senders using DANE refuse to deliver`, `have ${found.owner} removed (senders then use ${r.name}. IN TLSA ${r.value}) or set to ${r.value}; or replace the CNAME ${host} with its own address records`),
    );
  }
  if (!dane.trusted) {
    const { address } = parseServer(dane.server);
    out.push({ id: 'dns-tlsa-dnssec-unknown', severity: 'info', setting, message: `the DNS server ${dane.server} is neither on loopback nor listed in delivery.dane.trustedResolvers, so its AD bit proves nothing: whether the TLSA record is DNSSEC-signed was not checked`, fix: `run doctor --dns with dns.servers set to a validating resolver on this machine (e.g. unbound at 127.0.0.1), or add ${address} to delivery.dane.trustedResolvers if the path to it is protected` });
  } else if (found.unvalidated) {
    // No AD bit, but from a server that does not validate: the zone may well be signed.
    const why = found.unvalidated === 'authoritative' ? 'answered authoritatively, as a name server and not a validating resolver, so it set no AD bit' : 'returned the TLSA record with its RRSIG signatures but without the AD bit: the zone is signed, but this resolver does not validate';
    out.push({ id: 'dns-tlsa-dnssec-unknown', severity: 'warning', setting, message: `the DNS server ${dane.server} ${why}: whether the TLSA record is DNSSEC-valid could not be verified, and outbound DANE, which asks the same dns.servers, never applies`, fix: 'set dns.servers to a validating resolver on this machine (e.g. unbound at 127.0.0.1 with its DNSSEC validator and root trust anchor), then run doctor --dns again' });
  } else if (found.kind === 'insecure') {
    out.push({ id: 'dns-tlsa-unsigned', severity: 'warning', setting, message: `the TLSA record is published but not DNSSEC-validated (${dane.server} did not set the AD bit): senders ignore it (RFC 7672 §2.2), so DANE does not protect mail to ${host}`, fix: `sign the zone of ${host} with DNSSEC and publish its DS record at the parent; if it is signed, set dns.servers to a validating resolver (e.g. unbound at 127.0.0.1)` });
  } else if (!a.secure) {
    out.push({ id: 'dns-tlsa-address-unsigned', severity: 'warning', setting, message: `the TLSA record is signed, but the address records of ${a.chain.length > 1 ? `${host} (a CNAME to ${target})` : host} are not DNSSEC-validated: senders do not use DANE for a host whose addresses are unsigned (RFC 7672 §2.2.2)`, fix: a.chain.length > 1 ? `replace the CNAME ${host}. IN CNAME ${target}. with ${host}'s own A/AAAA records in its signed zone, or have ${target}'s zone signed` : `sign the zone holding the A/AAAA records of ${host}` });
  }
  return out;
}

async function checkTxt(dns: Resolver, r: DnsRecord): Promise<Finding[]> {
  const l = await txt(dns, r.name);
  if (!l.ok) return [l.finding];
  const v = r.value ?? '';
  if (v.startsWith('v=spf1')) {
    const spf = l.value.filter((t) => /^v=spf1(\s|$)/i.test(t));
    if (spf.length === 0) return [finding(r, 'dns-spf-missing', 'error', `${r.name} has no SPF record: receivers cannot tell this server may send its mail`)];
    // RFC 7208 §4.5: more than one SPF record is a permanent error for every receiver.
    if (spf.length > 1) return [finding(r, 'dns-spf-multiple', 'error', `${r.name} has ${spf.length} SPF records, which makes SPF fail everywhere (RFC 7208 §4.5)`, `keep one: ${r.name}. IN TXT "${v}"`)];
    return [];
  }
  if (v.startsWith('v=DKIM1')) {
    const want = tagList(v).get('p');
    const recs = l.value.filter((t) => tagList(t).has('p'));
    if (recs.length === 0) return [finding(r, 'dns-dkim-missing', 'error', `no DKIM key at ${r.name}: signatures with this selector fail, and so does DMARC`)];
    if (recs.some((t) => tagList(t).get('p')?.replace(/\s+/g, '') === want)) return [];
    return [finding(r, 'dns-dkim-mismatch', 'error', `the key published at ${r.name} is not the key this server signs with`, `replace it with ${r.name}. IN TXT "${v}"`)];
  }
  if (v.startsWith('v=DMARC1')) {
    const d = l.value.filter((t) => /^v=DMARC1\s*(;|$)/.test(t));
    if (d.length !== 1) return [finding(r, 'dns-dmarc-missing', 'warning', d.length === 0 ? `no DMARC record: big receivers junk or refuse mail from domains without one` : `${d.length} DMARC records: receivers ignore them all (RFC 7489 §6.6.3)`)];
    if (!tagList(d[0]!).has('rua')) return [finding(r, 'dns-dmarc-no-rua', 'info', 'the DMARC record has no rua: you get no reports of who sends mail as your domain', `add ; ${v.slice(v.indexOf('rua='))}`)];
    return [];
  }
  if (v.startsWith('v=STSv1')) {
    const want = tagList(v).get('id');
    const id = stsIdOf(l.value);
    if (id === undefined) return [finding(r, 'dns-mta-sts-missing', 'warning', `no (single, valid) v=STSv1 record: senders never fetch the policy this server serves`)];
    if (id !== want) return [finding(r, 'dns-mta-sts-stale-id', 'error', `the published policy id ${id} is not the id of the policy served (${want}): senders keep their cached copy and miss the change`)];
    return [];
  }
  if (v.startsWith('v=TLSRPTv1')) {
    const t = l.value.filter((x) => /^v=TLSRPTv1\s*(;|$)/.test(x));
    if (t.length === 0) return [finding(r, 'dns-tlsrpt-missing', 'info', 'no TLS-RPT record: senders whose TLS to your MX fails cannot tell you')];
    return [];
  }
  return [];
}

/**
 * PTR of each live address of the mail host, forward-confirmed (RFC 8601 §3 "iprev"). With a CNAME
 * at the host name the PTR may name its target: that name resolves to the same address, so iprev
 * passes, and the HELO name still resolves to the connecting address.
 */
function checkPtr(dns: Resolver, h: HostFacts): Promise<Finding[]> {
  const names = h.chain.join(' or ');
  return Promise.all(
    h.addresses.map(async (ip): Promise<Finding[]> => {
      const r: DnsRecord = { name: reverseName(ip), type: 'PTR', value: `${h.host}.`, why: '', external: true };
      const l = await ask(`${r.name} PTR`, () => dns.resolvePtr(r.name), []);
      if (!l.ok) return [l.finding];
      if (l.value.some((n) => h.chain.includes(bare(n)))) return [];
      return [finding(r, 'dns-ptr-mismatch', 'error', l.value.length === 0 ? `${ip} has no PTR record: many receivers refuse mail from it` : `the PTR of ${ip} names ${l.value.join(', ')}, not ${names}: many receivers refuse or junk its mail`, `ask your hoster to set the PTR of ${ip} to ${h.host}.`)];
    }),
  ).then((all) => all.flat());
}

/** The findings for `domains` (default: every configured domain but localhost). */
export async function auditDns(config: Config, domains?: readonly string[], opts: RecordOptions & { readonly dns?: Resolver } = {}): Promise<Finding[]> {
  const dns = opts.dns ?? configuredResolver(config);
  const list = domains ?? config.domains.filter((d) => d !== 'localhost');
  const out: Finding[] = [];
  const seen = new Set<string>();
  const host = await hostFacts(config, dns);
  for (const domain of list) {
    for (const r of expectedRecords(config, domain, opts)) {
      // The mail host's own records are shared by every domain: check them once.
      const key = `${r.name} ${r.type} ${r.value ?? ''}`;
      if (seen.has(key) || r.name.startsWith('<')) continue;
      seen.add(key);
      out.push(...(await checkRecord(config, dns, host, r)));
    }
  }
  out.push(...(await checkPtr(dns, host)));
  return out;
}
