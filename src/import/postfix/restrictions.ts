// smtpd_*_restrictions → Mailward's check lists, in order. Postfix (smtpd_delay_reject = yes, the
// default) evaluates client, helo, sender, relay and recipient restrictions at RCPT, in that
// order; so do we: one rcpt list, after the recipient check, the outbound guard and the rate
// limits (which no permit may skip). Relaying is never decided here: Mailward's relay gate runs
// before every check, so reject_unauth_destination is built in and no permit can open a relay.
import type { PipelineEntry } from '../../config/schema.ts';
import type { Service } from './master-cf.ts';
import { listOf } from './main-cf.ts';
import type { Report } from './report.ts';
import type { PostfixSettings } from './settings.ts';
import { accessEntries, type AccessKind } from './access.ts';
import { policyServiceKind } from './policy.ts';

export const RESTRICTION_LISTS = ['smtpd_client_restrictions', 'smtpd_helo_restrictions', 'smtpd_sender_restrictions', 'smtpd_relay_restrictions', 'smtpd_recipient_restrictions'] as const;

/** The checks' options, shared by every listener (one config section per check). */
export interface CheckOptions {
  'client-access': { entries: Record<string, string> };
  'helo-access': { entries: Record<string, string> };
  'sender-access': { entries: Record<string, string> };
  'recipient-access': { entries: Record<string, string> };
  dnsbl: { zones: Array<{ zone: string; codes?: string[]; action?: 'reject' | 'score' }> };
  helo: { requireFqdn?: boolean };
  greylist: Record<string, never>;
  spf: Record<string, never>;
}

export const emptyChecks = (): CheckOptions => ({
  'client-access': { entries: {} },
  'helo-access': { entries: {} },
  'sender-access': { entries: {} },
  'recipient-access': { entries: {} },
  dnsbl: { zones: [] },
  helo: {},
  greylist: {},
  spf: {},
});

export interface Lists {
  mail: PipelineEntry[];
  rcpt: PipelineEntry[];
  /** A list ends in reject after permit_sasl_authenticated only: the listener is for logins. */
  requireAuth: boolean;
}

interface Ctx {
  readonly s: PostfixSettings;
  readonly svc: Service | undefined;
  readonly report: Report;
  readonly checks: CheckOptions;
  /** Ranges permit_mynetworks trusts in the result (the trap already taken out). */
  readonly trusted: readonly string[];
  readonly lists: Lists;
  /** reject_unauth_destination (or defer_) was seen earlier in the current top-level list. */
  unauthSeen: boolean;
}

const ACCESS: Record<string, { check: keyof CheckOptions & `${string}-access`; kind: AccessKind }> = {
  check_client_access: { check: 'client-access', kind: 'network' },
  check_helo_access: { check: 'helo-access', kind: 'domain' },
  check_sender_access: { check: 'sender-access', kind: 'address' },
  check_recipient_access: { check: 'recipient-access', kind: 'address' },
};

/** Built into Mailward (no entry needed), and why. */
const BUILT_IN: Record<string, string> = {
  reject_unauth_destination: "Mailward's relay gate (always on, before every check): mail for other domains needs a login or relay.trustedNetworks",
  defer_unauth_destination: "Mailward's relay gate (always on; it refuses with 554 where Postfix deferred with 4xx)",
  reject_unlisted_recipient: 'check recipient (first in pipeline.rcpt): unknown local recipients get 550 5.1.1',
  reject_unverified_recipient: 'check recipient for local domains; other domains are relayed only for logins (no address verification probe)',
  reject_sender_login_mismatch: 'check sender-login (pipeline.mail): a login sends only as its own addresses',
  reject_authenticated_sender_login_mismatch: 'check sender-login (pipeline.mail): a login sends only as its own addresses',
  reject_known_sender_login_mismatch: 'check sender-login (pipeline.mail)',
  reject_unauthenticated_sender_login_mismatch: 'check sender-login: without a login, our own domains are refused as sender on the MX port',
  reject_unauth_pipelining: "Mailward's SMTP layer (commands sent before the greeting or before a reply that must be awaited are refused)",
  permit_auth_destination: 'the relay gate lets mail for our own domains in; nothing else to place',
};

/** Not translated, with what to do instead. */
const NO_EQUIVALENT: Record<string, string> = {
  reject_non_fqdn_sender: 'Mailward parses addresses strictly (RFC 5321); a sender without a domain is refused as a syntax error. Nothing to do',
  reject_non_fqdn_recipient: 'Mailward parses addresses strictly (RFC 5321); a recipient without a domain is refused. Nothing to do',
  reject_unknown_client_hostname: 'no reverse-DNS check exists; checks.dnsbl and greylist cover most of what it caught',
  reject_unknown_reverse_client_hostname: 'no reverse-DNS check exists; checks.dnsbl and greylist cover most of what it caught',
  reject_unknown_helo_hostname: 'check helo refuses invalid and (with requireFqdn) unqualified names, but does not look the name up in DNS',
  reject_unverified_sender: 'no sender address verification; checks.sender-domain (reject_unknown_sender_domain) is the closest',
  reject_unlisted_sender: 'check sender-login refuses our own domains as sender without a login on the MX port',
  reject_plaintext_session: 'set listeners.<name>.requireTls: true on that listener',
  reject_multi_recipient_bounce: 'not available; limits.maxRecipients caps recipients per message',
  permit_tls_clientcerts: 'client certificates are not a way to relay in Mailward; give that client a login',
  permit_tls_all_clientcerts: 'client certificates are not a way to relay in Mailward; give that client a login',
  permit_mx_backup: 'Mailward is not a backup MX (no relay_domains); mail for other domains needs a login',
  check_relay_domains: 'Mailward is not a backup MX; mail for other domains needs a login',
  reject_rhsbl_client: 'no right-hand-side (domain) blocklists yet; checks.dnsbl covers IP lists',
  reject_rhsbl_sender: 'no right-hand-side (domain) blocklists yet; checks.dnsbl covers IP lists',
  reject_rhsbl_helo: 'no right-hand-side (domain) blocklists yet',
  reject_rhsbl_recipient: 'no right-hand-side (domain) blocklists yet',
  reject_rhsbl_reverse_client: 'no right-hand-side (domain) blocklists yet',
  permit_dnswl_client: 'no DNS allow-lists; list the hosts in checks.client-access with "ok"',
  permit_rhswl_client: 'no DNS allow-lists',
  check_sender_mx_access: 'no MX-host access maps; use checks.sender-access for the domains',
  check_sender_ns_access: 'no NS-host access maps; use checks.sender-access for the domains',
  check_recipient_mx_access: 'no MX-host access maps',
  check_recipient_ns_access: 'no NS-host access maps',
  check_client_a_access: 'no access by the client name\'s address; use checks.client-access with addresses',
  check_client_mx_access: 'no MX-host access maps',
  check_client_ns_access: 'no NS-host access maps',
  check_reverse_client_hostname_access: 'client-access matches addresses only; list the addresses',
  check_ccert_access: 'client certificates are not a way to relay in Mailward; give that client a login',
  check_sasl_access: 'no per-login access map; disable the user (mailward user del / passwd) instead',
  sleep: 'Mailward has listeners.<name>.greetingDelay (postscreen-style) instead',
  defer_if_permit: 'not available',
  defer_if_reject: 'not available',
};

const TAKES_ARG = /^(check_\w+|reject_rbl_client|reject_rhsbl_\w+|permit_dnswl_client|permit_rhswl_client|sleep)$/;

/** True when any list of these services (or a class it names) holds an element `is` accepts. */
export function anyListHas(s: PostfixSettings, services: readonly (Service | undefined)[], is: (element: string) => boolean): boolean {
  const classes = new Set(s.list('smtpd_restriction_classes'));
  const seen = new Set<string>();
  const walk = (els: readonly string[]): boolean => els.some((e) => is(e.toLowerCase()) || (classes.has(e) && !seen.has(e) && (seen.add(e), walk(s.list(e)))));
  return services.some((svc) => RESTRICTION_LISTS.some((l) => walk(s.list(l, svc))));
}

/** True when any list (or class it names) says permit_mynetworks. */
export function usesMynetworks(s: PostfixSettings, services: readonly (Service | undefined)[]): boolean {
  return anyListHas(s, services, (e) => e === 'permit_mynetworks');
}

export function translateLists(s: PostfixSettings, svc: Service | undefined, report: Report, checks: CheckOptions, trusted: readonly string[]): Lists {
  const lists: Lists = { mail: ['sender-login'], rcpt: ['recipient', 'outbound-guard', 'rate-limit'], requireAuth: false };
  const ctx: Ctx = { s, svc, report, checks, trusted, lists, unauthSeen: false };
  if (!s.yes('smtpd_delay_reject', svc) && s.isSet('smtpd_delay_reject', svc)) {
    report.info('delay-reject', s.source('smtpd_delay_reject', svc), 'smtpd_delay_reject = no', 'every restriction is applied at RCPT, as with the Postfix default (the same verdicts, one stage later)');
  }
  if (!s.yes('smtpd_reject_unlisted_recipient', svc)) {
    report.info('unlisted-recipient', s.source('smtpd_reject_unlisted_recipient', svc), 'smtpd_reject_unlisted_recipient = no', 'Mailward refuses unknown local recipients anyway (check recipient): accepting them makes backscatter');
  }
  for (const name of RESTRICTION_LISTS) {
    ctx.unauthSeen = false;
    translateList(ctx, name, s.list(name, svc), s.source(name, svc), new Set());
  }
  noRelayRule(s, svc, report);
  return lists;
}

/** Any of these in the relay or recipient restrictions is what Postfix 2.10+ demands before it starts. */
const RELAY_RULES = new Set(['reject_unauth_destination', 'defer_unauth_destination', 'reject', 'defer', 'defer_if_permit', 'check_relay_domains']);

/**
 * Postfix before 2.10 started with relay and recipient restrictions that never refuse relaying
 * (2.10+ refuses to start): such a server was an open relay. Named as an error; Mailward's relay
 * gate refuses it anyway.
 */
function noRelayRule(s: PostfixSettings, svc: Service | undefined, report: Report): void {
  const classes = new Set(s.list('smtpd_restriction_classes'));
  const seen = new Set<string>();
  const walk = (els: readonly string[]): boolean => els.some((e) => RELAY_RULES.has(e.toLowerCase()) || (classes.has(e) && !seen.has(e) && (seen.add(e), walk(s.list(e)))));
  const lists = ['smtpd_relay_restrictions', 'smtpd_recipient_restrictions'] as const;
  if (lists.some((l) => walk(s.list(l, svc)))) return;
  if (svc && !lists.some((l) => svc.overrides.has(l))) return; // main.cf's lists: reported once, for main.cf
  const where = lists.map((l) => s.source(l, svc)).filter((x, i, a) => a.indexOf(x) === i).join(', ');
  report.error(
    'no-relay-rule',
    where,
    `smtpd_relay_restrictions = ${s.get('smtpd_relay_restrictions', svc) || '(empty)'}; smtpd_recipient_restrictions = ${s.get('smtpd_recipient_restrictions', svc) || '(empty)'}${svc ? ` (service ${svc.name})` : ''}`,
    "not copied: Mailward's relay gate refuses mail for other domains without a login or relay.trustedNetworks",
    'neither list holds reject_unauth_destination (or defer_unauth_destination, reject, defer): this Postfix relayed for anyone — an open relay (Postfix 2.10 and later refuse to start with it). Nothing to do in Mailward; check the old server\'s logs for mail it relayed'
  );
}

function place(ctx: Ctx, stage: 'mail' | 'rcpt', check: string, warn: boolean): void {
  const list = ctx.lists[stage];
  const at = list.findIndex((e) => (typeof e === 'string' ? e : e.check) === check);
  if (at >= 0) {
    // Placed already (another list named it): keep the first place; enforce wins over warn.
    if (!warn && typeof list[at] !== 'string') list[at] = check;
    return;
  }
  list.push(warn ? { check, mode: 'warn' } : check);
}

function translateList(ctx: Ctx, listName: string, elements: readonly string[], source: string, inClass: Set<string>): void {
  const { s, report } = ctx;
  const classes = new Set(s.list('smtpd_restriction_classes'));
  let warn = false;
  let onlyPermits = true;
  let loginPermit = false;
  for (let i = 0; i < elements.length; i++) {
    const el = elements[i]!;
    const word = el.toLowerCase();
    const arg = TAKES_ARG.test(word) ? elements[++i]?.replace(/^\{\s*|\s*\}$/g, '') : undefined;
    const what = `${listName}: ${el}${arg ? ` ${arg}` : ''}`;
    const w = warn;
    warn = false;
    if (!word.startsWith('permit')) onlyPermits = onlyPermits && (word === 'reject' || word === 'defer');
    switch (true) {
      case word === 'warn_if_reject':
        warn = true;
        continue;
      case word === 'permit_mynetworks':
        if (ctx.trusted.length > 0) {
          for (const n of ctx.trusted) ctx.checks['client-access'].entries[n] ??= 'ok';
          place(ctx, 'rcpt', 'client-access', w);
          report.mapped(source, what, `relay.trustedNetworks (relaying) and checks.client-access "ok" entries for ${ctx.trusted.join(', ')} (the rest of the list is skipped for them)`);
        } else report.info('permit-mynetworks-empty', source, what, 'nothing: no network from mynetworks is trusted in the result (see the errors above)');
        continue;
      case word === 'permit_sasl_authenticated':
        loginPermit = true;
        place(ctx, 'rcpt', 'permit-login', w);
        report.mapped(source, what, 'check permit-login in pipeline.rcpt (a login may relay through the relay gate; the checks after it are skipped for logins)');
        continue;
      case word === 'permit':
        // A class inlined here (listName "smtpd_relay_restrictions > cls") permits for the list it is in.
        if (!ctx.unauthSeen && /^smtpd_(relay|recipient)_restrictions/.test(listName)) {
          report.error('relay-permit', source, what, 'not copied: Mailward\'s relay gate still refuses mail for other domains without a login', 'in Postfix this "permit" comes before reject_unauth_destination, so anyone could relay (an open relay). Nothing to do in Mailward');
        } else report.info('permit', source, what, 'the end of this list; Mailward goes on with the next check');
        return;
      case word === 'reject' || word === 'defer':
        if (onlyPermits && loginPermit) {
          ctx.lists.requireAuth = true;
          report.mapped(source, `${listName}: ... permit_sasl_authenticated, ${el}`, 'listeners.<name>.requireAuth: true (MAIL FROM is refused until the client logged in)');
        } else {
          report.untranslated('catch-all-reject', source, what, 'not translated: Mailward has no "refuse everything else" check; the relay gate still refuses relaying', 'if this listener is only for logins, set listeners.<name>.requireAuth: true; otherwise list what to refuse in checks.client-access / sender-access');
        }
        return;
      case classes.has(el) && !inClass.has(el):
        inClass.add(el);
        report.mapped(source, what, `restriction class ${el} (${s.source(el)}) inlined here`);
        translateList(ctx, `${listName} > ${el}`, listOf(s.get(el)), s.source(el), inClass);
        continue;
      case word in BUILT_IN:
        if (/_unauth_destination$/.test(word)) ctx.unauthSeen = true;
        report.mapped(source, what, BUILT_IN[word]!);
        continue;
      case word === 'reject_unknown_sender_domain':
        place(ctx, 'rcpt', 'sender-domain', w);
        report.mapped(source, what, 'check sender-domain in pipeline.rcpt');
        continue;
      case word === 'reject_unknown_recipient_domain':
        place(ctx, 'rcpt', 'recipient-domain', w);
        report.mapped(source, what, 'check recipient-domain in pipeline.rcpt');
        continue;
      case word === 'reject_invalid_helo_hostname' || word === 'reject_non_fqdn_helo_hostname':
        if (word === 'reject_non_fqdn_helo_hostname') ctx.checks.helo.requireFqdn = true;
        place(ctx, 'mail', 'helo', w);
        report.mapped(source, what, `check helo in pipeline.mail${word === 'reject_non_fqdn_helo_hostname' ? ' with requireFqdn: true' : ''}`);
        continue;
      case word === 'reject_rbl_client' && arg !== undefined:
        dnsblZone(ctx, arg, source, what, w);
        continue;
      case word in ACCESS && arg !== undefined: {
        const a = ACCESS[word]!;
        accessEntries(ctx.s, arg, a.kind, a.check, ctx.checks[a.check].entries, report, { relaying: /relay|recipient/.test(listName) && !ctx.unauthSeen, classes });
        place(ctx, 'rcpt', a.check, w);
        report.mapped(source, what, `check ${a.check} in pipeline.rcpt with the entries of ${arg} (checks.${a.check}.entries)`);
        continue;
      }
      case word === 'check_policy_service' && arg !== undefined: {
        const kind = policyServiceKind(s, arg);
        if (kind === 'greylist' || kind === 'spf') {
          place(ctx, 'rcpt', kind, w);
          report.mapped(source, what, kind === 'greylist' ? 'check greylist in pipeline.rcpt (built in, postgrey\'s semantics: delay 5 min, /24 networks, auto-whitelist after 5 passes)' : 'check spf in pipeline.rcpt (built in: fail rejects, softfail scores)');
        } else {
          report.untranslated('policy-service', source, what, 'not translated: an unknown policy service', `if it is postgrey or policyd-spf, add "greylist" or "spf" to pipeline.rcpt; otherwise keep running it and let "mailward policyd" or its own rules cover it, or drop it`);
        }
        continue;
      }
      case word in NO_EQUIVALENT:
        report.untranslated(word, source, what, 'not translated', NO_EQUIVALENT[word]!);
        continue;
      default:
        report.untranslated('unknown-restriction', source, what, 'not translated: the importer does not know this restriction', 'check its meaning in postconf(5) and place the closest Mailward check by hand (mailward config show lists them)');
    }
  }
}

function dnsblZone(ctx: Ctx, arg: string, source: string, what: string, warn: boolean): void {
  const [zoneRaw, codes] = arg.split('=');
  const zone = zoneRaw!.toLowerCase().replace(/\.$/, '');
  if (!/^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)+$/.test(zone)) {
    ctx.report.untranslated('dnsbl-zone', source, what, 'not translated: not a DNS zone name', 'add the zone to checks.dnsbl.zones by hand');
    return;
  }
  const entry: CheckOptions['dnsbl']['zones'][number] = { zone };
  if (codes) {
    const m = /^(\d+\.\d+\.\d+\.)(?:\[(\d+)\.\.(\d+)\]|(\d+))$/.exec(codes);
    if (m) entry.codes = [m[4] !== undefined ? `${m[1]}${m[4]}` : `${m[1]}${m[2]}-${m[1]}${m[3]}`];
    else ctx.report.untranslated('dnsbl-codes', source, what, `checks.dnsbl zone ${zone} with its default answers (any 127.0.0.0/8 but 127.255.255.0/24)`, `write the answers that mean "listed" as checks.dnsbl.zones[].codes, e.g. ["127.0.0.2-127.0.0.11"]`);
  }
  if (warn) entry.action = 'score';
  if (!ctx.checks.dnsbl.zones.some((z) => z.zone === zone)) ctx.checks.dnsbl.zones.push(entry);
  place(ctx, 'rcpt', 'dnsbl', false);
  ctx.report.mapped(source, what, `checks.dnsbl.zones: ${zone}${entry.codes ? ` (codes ${entry.codes.join(', ')})` : ''}${warn ? ' scored, not rejected (warn_if_reject)' : ''}`);
}
