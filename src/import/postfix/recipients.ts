// Who receives mail: the local domains (mydestination, virtual_alias_domains,
// virtual_mailbox_domains), the mailboxes (virtual_mailbox_maps, or the Unix accounts behind
// local_recipient_maps = unix:passwd.byname), the aliases (alias_maps with :include:,
// virtual_alias_maps with @domain catch-alls) and which login may send as whom
// (smtpd_sender_login_maps). Pipes, files and patterns are reported, never dropped.
import { existsSync, readFileSync } from 'node:fs';
import { readMap, readPasswd, splitTargets, underRoot, type MapEntry } from './maps.ts';
import { literalKey } from './maps.ts';
import { isValidDomain } from '../../core/address.ts';
import type { Report } from './report.ts';
import type { PostfixSettings } from './settings.ts';

export interface Recipients {
  domains: string[];
  users: string[];
  aliases: Map<string, string[]>;
  sendAs: Record<string, string[]>;
  /** virtual mailbox map values ("example.org/alice/"), for the Maildir path. */
  mailboxPaths: Map<string, string>;
}

const LOCALHOST = /^localhost(\.localdomain)?$|^localhost\./;
const isMapRef = (v: string): boolean => /^[a-z]+:/.test(v);

/** Entries of every table in a list setting; unreadable ones are reported. */
function entriesOf(s: PostfixSettings, param: string, report: Report, format: 'table' | 'aliases' = 'table'): MapEntry[] {
  const out: MapEntry[] = [];
  for (const ref of s.list(param)) {
    const m = readMap(ref, s.root, format);
    if (m.kind === 'table' || m.kind === 'cidr') out.push(...m.entries);
    else if (m.kind === 'patterns') {
      for (const e of m.entries) {
        const k = literalKey(e.key);
        if (k && !k.startsWith('.')) out.push({ ...e, key: k });
        else report.untranslated('pattern-entry', e.source, `${e.key} ${e.value}`, `not imported (${param})`, 'a regular expression cannot become a mailbox or alias; add the addresses it served with mailward alias add (a domain catch-all is "@domain")');
      }
    } else if (m.kind === 'unreadable') {
      if (m.type === 'nis' && s.source(param) === 'default') continue; // Postfix's own default names NIS; no Debian server has it
      report.untranslated('map-unreadable', s.source(param), `${param} = ${ref}`, 'nothing imported from it', `${m.why}. Fix: ${m.fix}`);
    }
  }
  return out;
}

/** A domain list setting: names, or tables whose bare-domain keys are the domains. */
function domainList(s: PostfixSettings, param: string, report: Report): string[] {
  const out: string[] = [];
  for (const v of s.list(param)) {
    if (isMapRef(v)) {
      const m = readMap(v, s.root);
      if (m.kind === 'table') out.push(...m.entries.filter((e) => !e.key.includes('@') && e.key.includes('.')).map((e) => e.key.toLowerCase()));
    } else if (v.startsWith('/')) {
      const f = underRoot(s.root, v);
      if (existsSync(f)) out.push(...readFileSync(f, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim().toLowerCase()).filter(Boolean));
    } else out.push(v.toLowerCase());
  }
  if (out.length > 0) report.mapped(s.source(param), `${param} = ${s.get(param)}`, `domains: ${[...new Set(out)].filter((d) => !LOCALHOST.test(d)).join(', ')}`);
  return out;
}

export function readRecipients(s: PostfixSettings, report: Report): Recipients {
  const r: Recipients = { domains: [], users: [], aliases: new Map(), sendAs: {}, mailboxPaths: new Map() };
  if (!s.isSet('myhostname')) report.info('myhostname-default', 'default', `myhostname is not set (Postfix used the machine's name: ${s.get('myhostname')})`, 'hostname and $myhostname in mydestination take that name; check them');
  const mydest = domainList(s, 'mydestination', report);
  const localDomains = mydest.filter((d) => !LOCALHOST.test(d));
  if (localDomains.length < mydest.length) report.info('localhost', s.source('mydestination'), `${mydest.filter((d) => LOCALHOST.test(d)).join(', ')} in mydestination`, 'left out: local programs hand mail to "mailward sendmail", not to a localhost domain');
  const virtualAlias = domainList(s, 'virtual_alias_domains', report);
  const virtualMailbox = domainList(s, 'virtual_mailbox_domains', report);
  r.domains = [...new Set([...localDomains, ...virtualAlias, ...virtualMailbox])].filter((d) => {
    if (isValidDomain(d)) return true;
    report.untranslated('domain-invalid', s.source('mydestination'), `domain ${JSON.stringify(d)}`, 'left out of domains: not a domain name', 'write the domain names this server receives mail for in domains');
    return false;
  });
  const inDomains = (a: string): boolean => r.domains.includes(a.slice(a.lastIndexOf('@') + 1));
  const addAlias = (from: string, targets: string[]): void => {
    const list = r.aliases.get(from) ?? [];
    r.aliases.set(from, [...new Set([...list, ...targets])]);
  };

  // Mailboxes of virtual domains.
  for (const e of entriesOf(s, 'virtual_mailbox_maps', report)) {
    const key = e.key.toLowerCase();
    if (key.startsWith('@')) report.untranslated('mailbox-catch-all', e.source, `${e.key} ${e.value}`, 'not imported: a catch-all mailbox', `make it an alias: mailward alias add ${key} <mailbox address>`);
    else if (key.includes('@') && inDomains(key)) {
      r.users.push(key);
      r.mailboxPaths.set(key, e.value);
    }
  }
  if (r.users.length > 0) report.mapped(s.source('virtual_mailbox_maps'), `virtual_mailbox_maps: ${r.users.length} mailboxes`, 'mailboxes in the user list (mailward user add), each with a random password: set real ones with mailward user passwd, or let auth.backend: dovecot check them');

  // Unix accounts as mailboxes of the first local domain (local(8) delivery).
  // Postfix's local users answer in every local domain; their mailbox lives in $mydomain when it is one.
  const mydomain = s.get('mydomain').toLowerCase();
  const first = localDomains.includes(mydomain) ? mydomain : localDomains[0];
  const unixUsers = s.list('local_recipient_maps').some((m) => m.replace(/^(proxy:)+/, '') === 'unix:passwd.byname') && first ? readPasswd(underRoot(s.root, '/etc/passwd')) : [];
  for (const u of unixUsers) {
    r.users.push(`${u.name}@${first}`);
    for (const d of localDomains.filter((x) => x !== first)) addAlias(`${u.name}@${d}`, [`${u.name}@${first}`]);
  }
  if (unixUsers.length > 0) {
    report.mapped(s.source('local_recipient_maps'), `local_recipient_maps (unix:passwd.byname): ${unixUsers.map((u) => u.name).join(', ')} (uid 1000 and up)`, `mailboxes ${unixUsers.map((u) => `${u.name}@${first}`).join(', ')}${localDomains.length > 1 ? `, and aliases for them in ${localDomains.filter((x) => x !== first).join(', ')}` : ''}; random passwords (set them with mailward user passwd)`);
  }
  const localName = (t: string, domain: string): string => (t.includes('@') ? t : `${t.toLowerCase()}@${domain}`);

  // aliases(5): each name in every local domain.
  for (const e of entriesOf(s, 'alias_maps', report, 'aliases')) {
    const targets = aliasTargets(s, e, report);
    if (targets.length === 0) continue;
    for (const d of localDomains) {
      const from = `${e.key}@${d}`;
      if (r.users.includes(from)) continue; // the account itself; Postfix's alias would win, but it names the user again
      addAlias(from, targets.map((t) => localName(t, d)));
    }
  }

  // virtual(5): user@domain, @domain catch-alls, bare names for the local domains.
  const origin = s.get('myorigin') || first || 'localhost';
  for (const e of entriesOf(s, 'virtual_alias_maps', report)) {
    const key = e.key.toLowerCase();
    if (!key.includes('@')) {
      if (virtualAlias.includes(key) || virtualMailbox.includes(key)) continue; // the domain's own marker line
      for (const d of localDomains) addAlias(`${key}@${d}`, splitTargets(e.value.replace(/\s+/g, ',')).map((t) => localName(t, origin)));
      continue;
    }
    if (!inDomains(key)) {
      report.untranslated('alias-foreign', e.source, `${e.key} ${e.value}`, 'not imported: the domain is not one of ours', 'add the domain to virtual_alias_domains (domains in Mailward) or leave it out');
      continue;
    }
    addAlias(key, splitTargets(e.value.replace(/\s+/g, ',')).map((t) => localName(t, origin)));
  }
  for (const [from, targets] of r.aliases) {
    if (r.users.includes(from)) {
      report.untranslated('alias-shadows-mailbox', 'virtual_alias_maps', `${from} -> ${targets.join(', ')}`, 'not imported: the address is also a mailbox', 'Mailward keeps a mailbox and an alias apart; make the extra targets a separate alias, or delete the mailbox');
      r.aliases.delete(from);
    }
  }
  if (r.aliases.size > 0) report.mapped(`${s.source('alias_maps')}, ${s.source('virtual_alias_maps')}`, `alias_maps and virtual_alias_maps: ${r.aliases.size} aliases`, 'aliases (mailward alias add); "@domain" ones are catch-alls');

  // smtpd_sender_login_maps: sender → logins; Mailward keys it by login (checks.sender-login.sendAs).
  for (const e of entriesOf(s, 'smtpd_sender_login_maps', report)) {
    for (const login of splitTargets(e.value.replace(/\s+/g, ','))) {
      if (!login.includes('@')) {
        report.untranslated('sender-login', e.source, `${e.key} ${e.value}`, `not imported for ${login}`, 'Mailward logins are full addresses; add the sender to checks.sender-login.sendAs under the login\'s address');
        continue;
      }
      const l = login.toLowerCase();
      if (l === e.key.toLowerCase()) continue; // a login always owns its own address
      (r.sendAs[l] ??= []).push(e.key.toLowerCase());
    }
  }
  if (Object.keys(r.sendAs).length > 0) report.mapped(s.source('smtpd_sender_login_maps'), 'smtpd_sender_login_maps', 'checks.sender-login.sendAs');
  r.users = [...new Set(r.users)];
  return r;
}

/** Targets of an aliases(5) entry; :include: files are read, pipes and files reported. */
function aliasTargets(s: PostfixSettings, e: MapEntry, report: Report, depth = 0): string[] {
  const out: string[] = [];
  for (const t of splitTargets(e.value)) {
    if (t.startsWith('|')) {
      report.untranslated('alias-command', e.source, `${e.key}: ${t}`, 'not imported: Mailward does not run programs for mail', 'run the program from a mailbox (e.g. a Sieve/procmail rule or a script reading the Maildir), or keep a small Postfix for it');
    } else if (t.startsWith('/')) {
      report.untranslated('alias-file', e.source, `${e.key}: ${t}`, 'not imported: Mailward does not append mail to files', 'deliver to a mailbox instead');
    } else if (t.toLowerCase().startsWith(':include:')) {
      const file = underRoot(s.root, t.slice(':include:'.length).trim());
      if (!existsSync(file) || depth > 3) {
        report.untranslated('alias-include', e.source, `${e.key}: ${t}`, 'not imported: the file is not there', 'copy the list file and import again, or add the members with mailward alias add');
        continue;
      }
      const members = readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean).join(', ');
      report.mapped(e.source, `${e.key}: ${t}`, 'its members became the alias targets (the list is no longer read from the file)');
      out.push(...aliasTargets(s, { ...e, value: members }, report, depth + 1));
    } else out.push(t.replace(/^\\/, ''));
  }
  return out;
}
