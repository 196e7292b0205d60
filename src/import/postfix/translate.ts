// The whole translation: the old server's settings in, one Mailward config (as plain data), the
// mailboxes and aliases to create, the secret files to write, and the report out. Pure apart from
// reading the old server's files; writing is write.ts.
import type { PipelineEntry } from '../../config/schema.ts';
import { readDelivery } from './delivery.ts';
import { listenHosts, readListeners, type ListenerPlan } from './listeners.ts';
import { readMynetworks } from './networks.ts';
import { readRecipients } from './recipients.ts';
import { Report } from './report.ts';
import { anyListHas, emptyChecks, translateLists, usesMynetworks, type CheckOptions, type Lists } from './restrictions.ts';
import { PostfixSettings, type PostfixSources } from './settings.ts';
import { listUnread } from './unread.ts';

export interface ImportPlan {
  readonly config: Record<string, unknown>;
  readonly users: readonly string[];
  readonly aliases: ReadonlyMap<string, readonly string[]>;
  /** Files to write beside the config (mode 0600): smarthost passwords. */
  readonly secrets: ReadonlyMap<string, string>;
  readonly report: Report;
  readonly defaultsFrom: string;
  /** Every explicit setting (main.cf lines, master.cf -o), and whether the translation read it. */
  readonly params: readonly ExplicitParam[];
}

export interface ExplicitParam {
  readonly name: string;
  readonly value: string;
  readonly source: string;
  /** "submission/inet" for a master.cf -o (as postconf -P names it); absent for main.cf. */
  readonly service?: string;
  readonly read: boolean;
}

const same = (a: Lists, b: Lists): boolean => JSON.stringify([a.mail, a.rcpt]) === JSON.stringify([b.mail, b.rcpt]);

export function planImport(src: PostfixSources): ImportPlan {
  const s = new PostfixSettings(src);
  const report = new Report();
  report.info('defaults', 'postconf', `defaults from ${s.defaults.origin}`, `main.cf ${s.main.size} settings, master.cf ${s.services.length} services`);
  const listeners = readListeners(s, report);
  const used = usesMynetworks(s, [undefined, ...listeners.map((l) => l.service)]);
  const hosts = listenHosts(s, new Report());
  const { trusted } = readMynetworks(s, hosts, report, used);
  listenerMynetworks(s, listeners, hosts, report);
  const checks = emptyChecks();
  const global = translateLists(s, undefined, report, checks, trusted);
  const recipients = readRecipients(s, report);
  const delivery = readDelivery(s, report, recipients.mailboxPaths);

  const config: Record<string, unknown> = {};
  const hostname = s.get('myhostname');
  if (hostname && s.isSet('myhostname')) config.hostname = hostname;
  if (recipients.domains.length > 0) config.domains = recipients.domains;
  else report.untranslated('no-domains', s.source('mydestination'), 'no mail domain found', 'domains: [localhost] (the default)', 'set domains to the domains this server receives mail for');
  config.dataDir = './data';
  config.listeners = Object.fromEntries(
    listeners.map((l) => {
      const lists = l.service ? serviceLists(s, l.service, report, checks, trusted) : global;
      const out: Record<string, unknown> = { kind: l.kind, host: l.host, port: l.port, ...l.settings };
      if (lists.requireAuth) out.requireAuth = true;
      if (!same(lists, global)) out.pipeline = { mail: lists.mail, rcpt: lists.rcpt };
      return [l.name, out];
    }),
  );
  if (trusted.length > 0) config.relay = { trustedNetworks: trusted };
  config.pipeline = { mail: global.mail, rcpt: global.rcpt };
  config.checks = checkSection(checks, recipients.sendAs, usedChecks(global, config.listeners as Record<string, { pipeline?: { mail: PipelineEntry[]; rcpt: PipelineEntry[] } }>));
  limitsAndTls(s, report, config);
  if (authSection(s, report, config)) senderLogins(s, report, [undefined, ...listeners.map((l) => l.service)]);
  const d: Record<string, unknown> = {};
  if (Object.keys(delivery.local).length > 0) d.local = delivery.local;
  if (Object.keys(delivery.smarthosts).length > 0) d.smarthosts = delivery.smarthosts;
  if (Object.keys(delivery.routes).length > 0) d.routes = delivery.routes;
  if (Object.keys(d).length > 0) config.delivery = d;
  others(s, report);
  listUnread(s, report);
  const params: ExplicitParam[] = [
    ...s.mainLines.map((p) => ({ name: p.name, value: p.value, source: p.source, read: s.wasRead(p) })),
    ...s.services.flatMap((v) => [...v.overrides.values()].map((p) => ({ name: p.name, value: p.value, source: p.source, service: `${v.name}/${v.type}`, read: s.wasRead(p) }))),
  ];
  return { config, users: recipients.users, aliases: recipients.aliases, secrets: delivery.secrets, report, defaultsFrom: s.defaults.origin, params };
}

/**
 * A listener's own -o mynetworks: Postfix trusted it on that listener only. Mailward's
 * relay.trustedNetworks is one list for all listeners, so nothing is copied; the trap (loopback,
 * own addresses) is an error as in main.cf, and the rest is named with what to do.
 */
function listenerMynetworks(s: PostfixSettings, listeners: readonly ListenerPlan[], hosts: readonly string[], report: Report): void {
  for (const l of listeners) {
    const svc = l.service;
    if (!svc || !(svc.overrides.has('mynetworks') || (svc.overrides.has('mynetworks_style') && !s.isSet('mynetworks')))) continue;
    const used = usesMynetworks(s, [svc]);
    const own = new Report();
    const { trusted } = readMynetworks(s, hosts, own, used, svc);
    for (const i of own.items) if (i.level !== 'mapped') report.add(i);
    report.untranslated(
      'mynetworks-listener',
      s.source(svc.overrides.has('mynetworks') ? 'mynetworks' : 'mynetworks_style', svc),
      `mynetworks = ${s.get('mynetworks', svc)} (service ${svc.name} only)`,
      `not copied: relay.trustedNetworks is one list for every listener${trusted.length ? `; in Postfix ${trusted.join(', ')} relayed through ${svc.name} only` : ''}`,
      trusted.length ? `give those clients logins (listeners.${l.name} with auth), or, if they may relay through every listener, add ${trusted.join(', ')} to relay.trustedNetworks by hand` : 'nothing to do: nothing safe to trust was left',
    );
  }
}

/** A service's lists; only what its own -o lines say is reported (main.cf's lists were, once). */
function serviceLists(s: PostfixSettings, svc: NonNullable<ListenerPlanService>, report: Report, checks: CheckOptions, trusted: readonly string[]): Lists {
  const own = new Report();
  const lists = translateLists(s, svc, own, checks, trusted);
  for (const item of own.items) if (item.source.endsWith('(-o)')) report.add(item);
  return lists;
}

type ListenerPlanService = Parameters<typeof translateLists>[1];

function usedChecks(global: Lists, listeners: Record<string, { pipeline?: { mail: PipelineEntry[]; rcpt: PipelineEntry[] } }>): Set<string> {
  const names = new Set<string>();
  const add = (l: readonly PipelineEntry[]): void => l.forEach((e) => names.add(typeof e === 'string' ? e : e.check));
  add(global.mail);
  add(global.rcpt);
  for (const l of Object.values(listeners)) {
    if (!l.pipeline) continue;
    add(l.pipeline.mail);
    add(l.pipeline.rcpt);
  }
  return names;
}

function checkSection(c: CheckOptions, sendAs: Record<string, string[]>, placed: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of ['client-access', 'helo-access', 'sender-access', 'recipient-access'] as const) {
    if (placed.has(name)) out[name] = { entries: c[name].entries };
  }
  if (placed.has('dnsbl')) out.dnsbl = { zones: c.dnsbl.zones };
  if (placed.has('helo') && c.helo.requireFqdn) out.helo = { requireFqdn: true };
  if (Object.keys(sendAs).length > 0) out['sender-login'] = { sendAs };
  return out;
}

function limitsAndTls(s: PostfixSettings, report: Report, config: Record<string, unknown>): void {
  const limits: Record<string, unknown> = {};
  if (s.isSet('message_size_limit')) {
    const n = Number(s.get('message_size_limit'));
    if (n > 0) limits.maxMessageSize = n;
    report.mapped(s.source('message_size_limit'), `message_size_limit = ${s.get('message_size_limit')}`, n > 0 ? `limits.maxMessageSize: ${n}` : 'no limit in Postfix; Mailward keeps its 25 MB default');
  }
  if (s.isSet('smtpd_recipient_limit')) {
    const n = Math.max(1, Number(s.get('smtpd_recipient_limit')) || 1000);
    limits.maxRecipients = n;
    report.mapped(s.source('smtpd_recipient_limit'), `smtpd_recipient_limit = ${s.get('smtpd_recipient_limit')}`, `limits.maxRecipients: ${n}`);
  }
  if (Object.keys(limits).length > 0) config.limits = limits;
  if (s.isSet('recipient_delimiter')) {
    const d = s.get('recipient_delimiter');
    // The directory takes only these characters as a delimiter (directory.ts DELIMITER_CHARS).
    if (/^[-+=_~#$&*^!]/.test(d)) {
      config.recipientDelimiter = d.slice(0, 1);
      if (d.length > 1) report.untranslated('delimiter-chars', s.source('recipient_delimiter'), `recipient_delimiter = ${d}`, `recipientDelimiter: "${d.slice(0, 1)}" only: mail to user${d.slice(1, 2)}tag is refused as an unknown recipient`, 'Mailward takes one delimiter character; tell the users of the others, or make aliases for the tagged addresses they use');
      else report.mapped(s.source('recipient_delimiter'), `recipient_delimiter = ${d}`, `recipientDelimiter: "${d}"`);
    } else report.untranslated('delimiter', s.source('recipient_delimiter'), `recipient_delimiter = ${d}`, 'not translated', 'Mailward takes one of + - = _ ~ # $ & * ^ ! as recipientDelimiter');
  }
  const cert = s.get('smtpd_tls_cert_file');
  const key = s.get('smtpd_tls_key_file');
  if (cert && key && !/snakeoil/.test(cert)) {
    config.tls = { cert, key };
    report.mapped(s.source('smtpd_tls_cert_file'), `smtpd_tls_cert_file/key_file = ${cert}, ${key}`, 'tls.cert, tls.key (the user Mailward runs as must be able to read the key)');
  } else if (cert) report.info('tls-snakeoil', s.source('smtpd_tls_cert_file'), `smtpd_tls_cert_file = ${cert}`, 'not copied: a self-signed pair; Mailward makes its own in dataDir/tls');
}

/** Postfix lets a login use any sender unless a list says reject_*sender_login_mismatch (with smtpd_sender_login_maps); Mailward never does. */
function senderLogins(s: PostfixSettings, report: Report, services: readonly (ListenerPlanService | undefined)[]): void {
  const mismatch = anyListHas(s, services, (e) => /^reject_(authenticated_|known_)?sender_login_mismatch$/.test(e));
  if (mismatch && s.get('smtpd_sender_login_maps')) return;
  report.untranslated(
    'sender-login-unrestricted',
    mismatch ? s.source('smtpd_sender_login_maps') : s.source('smtpd_sender_restrictions'),
    mismatch ? 'reject_sender_login_mismatch without smtpd_sender_login_maps' : 'no reject_sender_login_mismatch in any restriction list',
    'not copied: in Postfix any login could send as any address (forged senders from a stolen password); Mailward\'s sender-login check lets a login send only as its own address, its aliases and checks.sender-login.sendAs',
    'list the other addresses a login really sends as (shared mailboxes, old addresses) under checks.sender-login.sendAs["login@domain"], e.g. ["team@domain"] or ["@domain"]',
  );
}

/** The login backend; true when the Postfix config took logins at all. */
function authSection(s: PostfixSettings, report: Report, config: Record<string, unknown>): boolean {
  const usesSasl = s.yes('smtpd_sasl_auth_enable') || s.services.some((v) => v.overrides.has('smtpd_sasl_auth_enable') && s.yes('smtpd_sasl_auth_enable', v));
  if (!usesSasl) return false;
  const svc = s.services.find((v) => v.overrides.has('smtpd_sasl_type') || v.overrides.has('smtpd_sasl_path'));
  const type = s.get('smtpd_sasl_type', svc);
  const p = s.get('smtpd_sasl_path', svc);
  if (type === 'dovecot' && !/^inet:/.test(p)) {
    const socket = s.socketPath(p);
    config.auth = { backend: 'dovecot', dovecot: { socket } };
    report.mapped(s.source('smtpd_sasl_type', svc), `smtpd_sasl_type = dovecot, smtpd_sasl_path = ${p}`, `auth.backend: dovecot, auth.dovecot.socket: ${socket}`);
  } else {
    report.untranslated('sasl', s.source('smtpd_sasl_type', svc), `smtpd_sasl_type = ${type}, smtpd_sasl_path = ${p}`, 'logins are checked against Mailward\'s own user list', type === 'dovecot' ? 'Dovecot over inet: is not supported; give Dovecot a unix auth-client listener and set auth.dovecot.socket' : 'set each user\'s password with mailward user passwd (Cyrus SASL databases cannot be read), or let Dovecot check them (auth.backend: dovecot)');
  }
  return true;
}

function others(s: PostfixSettings, report: Report): void {
  for (const p of ['content_filter', 'smtpd_milters', 'non_smtpd_milters']) {
    const v = s.get(p);
    if (v) report.untranslated(p, s.source(p), `${p} = ${v}`, 'not translated: Mailward scans mail in its own pipeline', 'place "spam" (built in) and "virus" (clamd) in pipeline.data; DKIM signing is delivery.dkim; drop Amavis/OpenDKIM/milters once they are covered');
  }
  for (const p of ['relay_domains', 'relay_recipient_maps']) {
    const v = s.get(p);
    if (!v || (p === 'relay_domains' && v === s.get('mydestination'))) continue;
    report.untranslated(p, s.source(p), `${p} = ${v}`, 'not translated: Mailward is no backup MX; mail for those domains will be refused', 'make them local domains with their mailboxes, or keep the backup MX on another server');
  }
  const postscreenSites = s.list('postscreen_dnsbl_sites');
  if (postscreenSites.length > 0) report.untranslated('postscreen-dnsbl', s.source('postscreen_dnsbl_sites'), `postscreen_dnsbl_sites = ${postscreenSites.join(' ')}`, 'not translated: weights and a threshold have no equivalent', 'add the zones to checks.dnsbl.zones (action reject or score) and place "dnsbl" in pipeline.rcpt');
  if (s.get('smtpd_tls_security_level') === 'encrypt') report.info('tls-encrypt', s.source('smtpd_tls_security_level'), 'smtpd_tls_security_level = encrypt', 'kept per listener as requireTls (on the MX port RFC 3207 §4 says a public server must not require TLS)');
}
