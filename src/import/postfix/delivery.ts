// How mail leaves and lands: the local transport (lmtp:… to Dovecot, the virtual(8) Maildir tree,
// or local(8) mbox/Maildir), relayhost and transport_maps → delivery.smarthosts and routes, and
// the smarthost's password from smtp_sasl_password_maps → a file of its own (mode 0600), never
// the config text.
import { readMap } from './maps.ts';
import type { Report } from './report.ts';
import type { PostfixSettings } from './settings.ts';

export interface Delivery {
  local: Record<string, unknown>;
  smarthosts: Record<string, Record<string, unknown>>;
  routes: Record<string, string>;
  /** Files to write beside the config: name → content (mode 0600). */
  secrets: Map<string, string>;
}

/** "lmtp:unix:private/dovecot-lmtp", "lmtp:inet:127.0.0.1:24", "lmtp:[127.0.0.1]:24" → Mailward's LMTP address. */
function lmtpAddress(s: PostfixSettings, nexthop: string): string | undefined {
  if (nexthop.startsWith('unix:')) return `unix:${s.socketPath(nexthop.slice(5))}`;
  const inet = nexthop.replace(/^inet:/, '');
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(inet);
  if (m) return `inet:${m[1]!.includes(':') ? `[${m[1]}]` : m[1]}:${m[2]}`;
  if (nexthop.startsWith('private/') || nexthop.startsWith('/')) return `unix:${s.socketPath(nexthop)}`;
  return undefined;
}

function localTransport(s: PostfixSettings, report: Report, mailboxPaths: ReadonlyMap<string, string>): Record<string, unknown> {
  for (const param of ['virtual_transport', 'mailbox_transport', 'local_transport']) {
    const v = s.get(param);
    if (!v.startsWith('lmtp:')) continue;
    const addr = lmtpAddress(s, v.slice(5));
    if (addr) {
      report.mapped(s.source(param), `${param} = ${v}`, `delivery.local.transport: lmtp, address ${addr}`);
      return { transport: 'lmtp', lmtp: { address: addr } };
    }
    report.untranslated('lmtp-address', s.source(param), `${param} = ${v}`, 'not translated', 'set delivery.local.lmtp.address to unix:<socket> or inet:<host>:<port>');
  }
  if (mailboxPaths.size > 0 && s.get('virtual_transport') === 'virtual') {
    const base = s.get('virtual_mailbox_base');
    const regular = [...mailboxPaths].every(([a, p]) => p.replace(/\/$/, '') === `${a.split('@')[1]}/${a.split('@')[0]}` && p.endsWith('/'));
    const out: Record<string, unknown> = {};
    if (base && regular) {
      out.maildir = { path: `${base.replace(/\/$/, '')}/%d/%n` };
      report.mapped(s.source('virtual_mailbox_base'), `virtual(8) Maildirs ${base}/<domain>/<user>/`, `delivery.local.maildir.path: ${base}/%d/%n`);
    } else {
      report.untranslated('maildir-layout', s.source('virtual_mailbox_maps'), `virtual_mailbox_maps paths (e.g. ${[...mailboxPaths.values()][0]})`, 'Maildirs go to Mailward\'s default place (dataDir/mail/%d/%n/Maildir)', 'set delivery.local.maildir.path to a template (%d domain, %n local part) that matches your layout, or move the Maildirs');
    }
    const uid = /^static:(\d+)$/.exec(s.get('virtual_uid_maps'));
    const gid = /^static:(\d+)$/.exec(s.get('virtual_gid_maps'));
    if (uid) out.maildir = { ...(out.maildir as object), owner: Number(uid[1]), ...(gid ? { group: Number(gid[1]) } : {}) };
    return out;
  }
  const cmd = s.get('mailbox_command');
  if (cmd) {
    report.untranslated('mailbox-command', s.source('mailbox_command'), `mailbox_command = ${cmd}`, 'not translated: Mailward does not run a delivery program', /dovecot|deliver/.test(cmd) ? 'use Dovecot\'s LMTP: delivery.local.transport: lmtp with delivery.local.lmtp.address: unix:/run/dovecot/lmtp' : 'deliver to Maildir (the default) or LMTP');
    return {};
  }
  const home = s.get('home_mailbox');
  if (home.endsWith('/')) {
    report.mapped(s.source('home_mailbox'), `home_mailbox = ${home}`, `delivery.local.maildir.path: /home/%n/${home.replace(/\/$/, '')} (Mailward writes as one owner: set delivery.local.maildir.owner, or use LMTP, when each user owns their home)`);
    return { maildir: { path: `/home/%n/${home.replace(/\/$/, '')}` } };
  }
  report.untranslated('mbox', s.source('home_mailbox'), `local(8) delivery to mbox files (/var/mail/<user>${home ? ` or ~/${home}` : ''})`, 'Mailward delivers to Maildir (dataDir/mail/%d/%n/Maildir)', 'point the users\' IMAP server (or mail program) at the Maildirs, or use LMTP to Dovecot; convert old mboxes with mb2md');
  return {};
}

/** "[host]:port" / "host:port" / "host" of relayhost and transport nexthops. */
function parseNexthop(v: string): { host: string; port?: number; mx: boolean } | undefined {
  const m = /^(\[)?([^\]\s:]+)\]?(?::(\d+))?$/.exec(v.trim());
  if (!m) return undefined;
  return { host: m[2]!, ...(m[3] ? { port: Number(m[3]) } : {}), mx: m[1] === undefined };
}

export function readDelivery(s: PostfixSettings, report: Report, mailboxPaths: ReadonlyMap<string, string>): Delivery {
  const d: Delivery = { local: localTransport(s, report, mailboxPaths), smarthosts: {}, routes: {}, secrets: new Map() };
  const passwords = s.yes('smtp_sasl_auth_enable') ? s.list('smtp_sasl_password_maps').flatMap((ref) => {
    const m = readMap(ref, s.root);
    if (m.kind === 'table') return m.entries;
    report.untranslated('sasl-passwords', s.source('smtp_sasl_password_maps'), `smtp_sasl_password_maps = ${ref}`, 'no smarthost password imported', m.kind === 'unreadable' ? `${m.why}. Fix: ${m.fix}` : 'give a hash: table');
    return [];
  }) : [];
  const wrapper = s.yes('smtp_tls_wrappermode');
  const addSmarthost = (name: string, text: string, source: string): string | undefined => {
    const h = parseNexthop(text);
    if (!h) return undefined;
    const port = h.port ?? 25;
    const tls = wrapper || port === 465 ? 'implicit' : 'starttls';
    const host: Record<string, unknown> = { host: h.host, port, tls };
    const level = s.get('smtp_tls_security_level');
    if (tls === 'starttls' && !/^(encrypt|verify|secure|dane-only)$/.test(level)) {
      report.info('smarthost-tls', source, `${text} with smtp_tls_security_level = ${level || '(none)'}`, `delivery.smarthosts.${name}.tls: starttls — Mailward never sends to a smarthost without TLS; if that host has no STARTTLS, delivery fails until it does`);
    }
    if (h.mx) report.info('smarthost-mx', source, text, `delivery.smarthosts.${name}.host: ${h.host} (Postfix looked up its MX records; Mailward connects to the name)`);
    const entry = passwords.find((e) => [text, `[${h.host}]:${port}`, `[${h.host}]`, `${h.host}:${port}`, h.host].includes(e.key));
    if (entry) {
      const colon = entry.value.indexOf(':');
      const file = `smarthost-${name}.password`;
      d.secrets.set(file, `${entry.value.slice(colon + 1)}\n`);
      host.auth = { user: entry.value.slice(0, colon), passwordFile: file };
      report.mapped(entry.source, `smtp_sasl_password_maps entry for ${entry.key} (password not shown)`, `delivery.smarthosts.${name}.auth: user ${entry.value.slice(0, colon)}, passwordFile ${file} (mode 0600)`);
    }
    d.smarthosts[name] = host;
    return name;
  };
  const relayhost = s.get('relayhost');
  if (relayhost) {
    const name = addSmarthost('relayhost', relayhost, s.source('relayhost'));
    if (name) {
      d.routes['*'] = `smarthost:${name}`;
      report.mapped(s.source('relayhost'), `relayhost = ${relayhost}`, `delivery.smarthosts.${name}, delivery.routes "*": smarthost:${name}`);
    } else report.untranslated('relayhost', s.source('relayhost'), `relayhost = ${relayhost}`, 'not translated', 'define delivery.smarthosts.<name> and delivery.routes "*" by hand');
  }
  for (const ref of s.list('transport_maps')) {
    const m = readMap(ref, s.root);
    if (m.kind !== 'table') {
      report.untranslated('transport-map', s.source('transport_maps'), `transport_maps = ${ref}`, 'not read', m.kind === 'unreadable' ? `${m.why}. Fix: ${m.fix}` : 'give a hash: table');
      continue;
    }
    for (const e of m.entries) transportEntry(s, e.key.toLowerCase(), e.value, e.source, d, report, addSmarthost);
  }
  return d;
}

function transportEntry(s: PostfixSettings, key: string, value: string, source: string, d: Delivery, report: Report, addSmarthost: (name: string, text: string, source: string) => string | undefined): void {
  if (key !== '*' && !/^\.?(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/.test(key)) {
    report.untranslated('transport-key', source, `${key} ${value}`, 'not translated: delivery.routes are keyed by recipient domain', 'route the domain (or "*"), not a single address');
    return;
  }
  const [transport = '', ...rest] = value.split(':');
  const nexthop = rest.join(':');
  if (/^(smtp|relay)$/.test(transport) && nexthop) {
    const name = nexthop.replace(/[[\]]/g, '').split(':')[0]!.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[^a-z]+/, '') || 'relay';
    if (addSmarthost(name, nexthop, source)) {
      d.routes[key] = `smarthost:${name}`;
      report.mapped(source, `${key} ${value}`, `delivery.routes "${key}": smarthost:${name}`);
      return;
    }
  }
  if (/^(local|virtual|lmtp)$/.test(transport)) {
    report.info('transport-local', source, `${key} ${value}`, 'local delivery: the domain is one of `domains`');
    return;
  }
  report.untranslated('transport-entry', source, `${key} ${value}`, 'not translated', transport === 'error' || transport === 'discard' ? 'refuse that domain with checks.recipient-access "reject" instead' : 'add a delivery.routes entry by hand (local, mx or smarthost:<name>)');
  void s;
}
