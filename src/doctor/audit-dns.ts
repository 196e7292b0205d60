// `mailward doctor --dns`: asks the configured DNS servers for each record `dns records` says to
// publish and names every one that is missing or wrong, with the record to publish as the fix.
// Records written by hand may differ (a longer SPF, a stricter DMARC): only what breaks mail or
// a policy is an error.
import { Resolver } from 'node:dns/promises';
import type { Config } from '../config/load.ts';
import { stsIdOf, tagList } from '../core/mta-sts.ts';
import { DaneResolver } from '../delivery/tls-policy/dane.ts';
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

/** Checks one expected record against the live answers. */
async function checkRecord(config: Config, dns: Resolver, r: DnsRecord): Promise<Finding[]> {
  const host = config.hostname.toLowerCase();
  switch (r.type) {
    case 'MX': {
      const l = await ask(`${r.name} MX`, () => dns.resolveMx(r.name), []);
      if (!l.ok) return [l.finding];
      if (l.value.some((m) => m.exchange.toLowerCase().replace(/\.$/, '') === host)) return [];
      const now = l.value.map((m) => `${m.priority} ${m.exchange}`).join(', ');
      return [finding(r, 'dns-mx-missing', 'error', l.value.length === 0 ? `${r.name} has no MX record: mail for it cannot reach ${host}` : `the MX records of ${r.name} (${now}) do not name ${host}`)];
    }
    case 'A':
    case 'AAAA': {
      const l = await ask(`${r.name} ${r.type}`, () => (r.type === 'A' ? dns.resolve4(r.name) : dns.resolve6(r.name)), []);
      if (!l.ok) return [l.finding];
      if (r.value === undefined) return l.value.length > 0 ? [] : [finding(r, 'dns-address-missing', 'error', `the mail host ${r.name} has no A record: no one can connect to it`)];
      if (l.value.includes(r.value)) return [];
      return [finding(r, 'dns-address-wrong', 'error', l.value.length === 0 ? `${r.name} has no ${r.type} record` : `${r.name} points to ${l.value.join(', ')}, not to this server's ${r.value}`)];
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

/**
 * The TLSA record of the mail host (DANE, RFC 7672): published, DNSSEC-validated — the AD bit
 * of the configured resolver, believed only from one delivery.dane would believe (on loopback or
 * in delivery.dane.trustedResolvers, as outbound DANE does) — and matching the current key.
 */
async function checkTlsa(config: Config, r: DnsRecord): Promise<Finding[]> {
  const host = config.hostname.toLowerCase();
  const dane = new DaneResolver({ servers: config.dns.servers, trustedResolvers: config.delivery.dane.trustedResolvers, timeoutMs: config.dns.timeout, log: silentLogger() });
  const setting = `DNS ${r.name} TLSA`;
  const t = await dane.tlsa(r.name);
  if (t.kind === 'failed') {
    // RFC 4035 §5.5: a validating resolver answers SERVFAIL for data whose signatures fail.
    const bogus = / SERVFAIL /.test(t.reason) ? `; from a validating resolver SERVFAIL usually means the zone's signatures do not validate (bogus), and senders using DANE then defer all mail to ${host}` : '';
    return [{ id: 'dns-lookup-failed', severity: 'warning', setting, message: `${t.reason}, so this record was not checked${bogus}`, fix: `check dns.servers${bogus ? ', and the DNSSEC signatures and DS record of the zone of ' + host + ' (e.g. delv or dnsviz.net)' : ''}, then run doctor --dns again` }];
  }
  if (t.records.length === 0) return [finding(r, 'dns-tlsa-missing', 'info', `no TLSA record: senders cannot use DANE (RFC 7672) to authenticate ${host}`, `in a DNSSEC-signed zone, publish ${r.name}. IN TLSA ${r.value}`)];
  const out: Finding[] = [];
  if (!t.records.some((x) => x.toLowerCase() === r.value!.toLowerCase())) {
    out.push(finding(r, 'dns-tlsa-mismatch', 'error', `the TLSA records (${t.records.join(', ')}) match no key of the current certificate: senders using DANE refuse to deliver`, `replace them with ${r.name}. IN TLSA ${r.value} (and publish the next key before each renewal)`));
  }
  if (!dane.trusted) {
    const { address } = parseServer(dane.server);
    out.push({ id: 'dns-tlsa-dnssec-unknown', severity: 'info', setting, message: `the DNS server ${dane.server} is neither on loopback nor listed in delivery.dane.trustedResolvers, so its AD bit proves nothing: whether the TLSA record is DNSSEC-signed was not checked`, fix: `run doctor --dns with dns.servers set to a validating resolver on this machine (e.g. unbound at 127.0.0.1), or add ${address} to delivery.dane.trustedResolvers if the path to it is protected` });
  } else if (t.kind === 'insecure') {
    out.push({ id: 'dns-tlsa-unsigned', severity: 'warning', setting, message: `the TLSA record is published but not DNSSEC-validated (${dane.server} did not set the AD bit): senders ignore it (RFC 7672 §2.2), so DANE does not protect mail to ${host}`, fix: `sign the zone of ${host} with DNSSEC and publish its DS record at the parent; if it is signed, set dns.servers to a validating resolver (e.g. unbound at 127.0.0.1)` });
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

/** PTR of each live address of the mail host, forward-confirmed (RFC 8601 §3 "iprev"). */
async function checkPtr(config: Config, dns: Resolver): Promise<Finding[]> {
  const host = config.hostname.toLowerCase();
  const out: Finding[] = [];
  const addrs: string[] = [];
  for (const fn of [() => dns.resolve4(host), () => dns.resolve6(host)]) {
    const l = await ask(`${host} address`, fn, []);
    if (l.ok) addrs.push(...l.value);
  }
  for (const ip of addrs) {
    const r: DnsRecord = { name: reverseName(ip), type: 'PTR', value: `${host}.`, why: '', external: true };
    const l = await ask(`${r.name} PTR`, () => dns.resolvePtr(r.name), []);
    if (!l.ok) {
      out.push(l.finding);
      continue;
    }
    if (l.value.some((n) => n.toLowerCase().replace(/\.$/, '') === host)) continue;
    out.push(finding(r, 'dns-ptr-mismatch', 'error', l.value.length === 0 ? `${ip} has no PTR record: many receivers refuse mail from it` : `the PTR of ${ip} names ${l.value.join(', ')}, not ${host}: many receivers refuse or junk its mail`, `ask your hoster to set the PTR of ${ip} to ${host}.`));
  }
  return out;
}

/** The findings for `domains` (default: every configured domain but localhost). */
export async function auditDns(config: Config, domains?: readonly string[], opts: RecordOptions & { readonly dns?: Resolver } = {}): Promise<Finding[]> {
  const dns = opts.dns ?? configuredResolver(config);
  const list = domains ?? config.domains.filter((d) => d !== 'localhost');
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const domain of list) {
    for (const r of expectedRecords(config, domain, opts)) {
      // The mail host's own records are shared by every domain: check them once.
      const key = `${r.name} ${r.type} ${r.value ?? ''}`;
      if (seen.has(key) || r.name.startsWith('<')) continue;
      seen.add(key);
      out.push(...(await checkRecord(config, dns, r)));
    }
  }
  out.push(...(await checkPtr(config, dns)));
  return out;
}
