// Postfix access(5) tables → entries of Mailward's access checks. Keys and actions are
// translated one by one; whatever means something else in Mailward is reported, never guessed.
// Postfix's parent_domain_matches_subdomains default includes smtpd_access_maps, so a domain key
// "example.com" also matches its subdomains: the result lists ".example.com" beside it.
import { parseAction, parseMapFile } from '../../checks/lib/access-map.ts';
import { isNetworkProblem, parseNetwork, readNetwork } from '../../core/net.ts';
import { coversLoopback } from '../../doctor/networks.ts';
import { TRAP_EXPLANATION, TRAP_FIX } from './networks.ts';
import { literalKey, readMap, type MapEntry } from './maps.ts';
import type { Report } from './report.ts';
import type { PostfixSettings } from './settings.ts';

export type AccessKind = 'network' | 'domain' | 'address';

/** Actions of access(5) that are not verdicts; the fix for each. */
const NOT_VERDICTS: Record<string, string> = {
  redirect: 'no redirect action; make an alias instead (mailward alias add)',
  filter: 'no per-message transport; use delivery.routes for the recipient domain',
  prepend: 'no header-adding action',
  warn: 'set mode: warn on the check in the pipeline to log instead of refusing',
  info: 'not needed: every verdict is logged',
  bcc: 'no copy-to action',
  defer_if_permit: 'not available',
  defer_if_reject: 'not available',
};

/** Client keys Postfix allows that Mailward writes as CIDR: "192.168.1" is 192.168.1.0/24. */
function networkKey(key: string): string | undefined {
  if (parseNetwork(key)) return key;
  const parts = key.split('.');
  if (parts.length >= 1 && parts.length < 4 && parts.every((p) => /^(?:0|[1-9]\d{0,2})$/.test(p) && Number(p) < 256)) {
    const n = `${[...parts, '0', '0', '0'].slice(0, 4).join('.')}/${parts.length * 8}`;
    return parseNetwork(n) ? n : undefined;
  }
  return undefined;
}

export function accessEntries(
  s: PostfixSettings,
  ref: string,
  kind: AccessKind,
  check: string,
  into: Record<string, string>,
  report: Report,
  opts: { relaying: boolean; classes: ReadonlySet<string> },
): void {
  const map = readMap(ref, s.root);
  if (map.kind === 'unreadable' || map.kind === 'passwd') {
    report.untranslated('map-unreadable', ref, `${check} table ${ref}`, 'no entries imported', map.kind === 'unreadable' ? `${map.why}. Fix: ${map.fix}` : 'not an access table');
    return;
  }
  let oks = 0;
  for (const e of map.entries) {
    const key = translateKey(e, map.kind === 'patterns', kind);
    if (typeof key !== 'object') {
      report.untranslated('access-key', e.source, `${e.key} ${e.value}`, `not imported into checks.${check}`, key);
      continue;
    }
    const action = e.value.trim();
    const verb = action.split(/\s+/)[0]!.toLowerCase();
    if (opts.classes.has(action.split(/\s+/)[0]!)) {
      const cls = action.split(/\s+/)[0]!;
      if (opts.relaying && s.list(cls).some((el) => /^(permit|permit_mynetworks|permit_auth_destination)$/i.test(el))) {
        report.error('access-class-relays', e.source, `${e.key} ${e.value}`, `not imported into checks.${check}: the class ${cls} (${s.source(cls)}) permits, before reject_unauth_destination`, `in Postfix every client whose ${kind === 'network' ? 'address' : check === 'sender-access' ? 'MAIL FROM (free to forge)' : 'lookup key'} matched ${e.key} could relay through this server. Nothing to do in Mailward (only a login or relay.trustedNetworks relays); give that partner a login`);
        continue;
      }
      report.untranslated('access-class', e.source, `${e.key} ${e.value}`, `not imported into checks.${check}: the action is the restriction class ${cls} (${s.source(cls)}: ${s.get(cls) || 'empty'})`, 'an access entry can only accept, refuse or defer in Mailward; place the checks of that class in the pipeline for everyone, or list these keys with the action you want');
      continue;
    }
    if (verb in NOT_VERDICTS || (/^[a-z_]+$/.test(verb) && verb.includes('_'))) {
      report.untranslated('access-action', e.source, `${e.key} ${e.value}`, `not imported into checks.${check}`, NOT_VERDICTS[verb] ?? `the action is a restriction (${verb}); place that check in the pipeline, or give this key ok/reject`);
      continue;
    }
    // access(5): an all-numerical result that is not a reply code means OK.
    const stored = /^\d+$/.test(action) && action.length !== 3 ? 'OK' : action;
    const parsed = parseAction(stored);
    if (typeof parsed === 'string') {
      report.untranslated('access-action', e.source, `${e.key} ${e.value}`, `not imported into checks.${check}`, parsed);
      continue;
    }
    // The matcher's own parser has the last word: an entry it would refuse at start is reported here.
    const refused = key.keys.map((k) => parseMapFile(`${k} ${stored}`, kind).problems[0]).find((p) => p !== undefined);
    if (refused) {
      report.untranslated('access-entry', e.source, `${e.key} ${e.value}`, `not imported into checks.${check}`, refused.replace(/^line 1: /, ''));
      continue;
    }
    if (parsed.kind === 'ok') oks++;
    if (parsed.kind === 'ok' && opts.relaying && kind === 'network') {
      const n = readNetwork(key.keys[0]!);
      if (!isNetworkProblem(n) && coversLoopback(n)) {
        report.error('access-ok-loopback', e.source, `${e.key} ${e.value}`, `imported as "ok" in checks.${check}, which never lets anyone relay in Mailward`, `${TRAP_EXPLANATION} — here through an "OK" for loopback before reject_unauth_destination. Fix: ${TRAP_FIX}`);
      }
    }
    for (const k of key.keys) into[k] ??= stored;
  }
  report.mapped(ref, `${map.entries.length} entries of ${ref}`, `checks.${check}.entries`);
  if (oks > 0 && opts.relaying) {
    const sender = check === 'sender-access';
    const line = `${oks} "OK" entries of ${ref} in a relay/recipient restriction`;
    const meaning = `imported as "ok" (the remaining checks are skipped); in Mailward they never allow relaying: only a login or relay.trustedNetworks does`;
    if (sender) report.error('sender-access-relays', ref, line, meaning, 'in Postfix any client that claimed such a sender could relay through this server (a forged MAIL FROM is free): nothing to do in Mailward');
    else report.info('access-ok-relays', ref, line, `${meaning}; give those clients logins or list their LAN ranges in relay.trustedNetworks`);
  }
}

function translateKey(e: MapEntry, pattern: boolean, kind: AccessKind): { keys: string[] } | string {
  let key = e.key.toLowerCase();
  if (pattern) {
    const lit = literalKey(e.key);
    if (lit === undefined) return 'a regular expression that is not a plain address or domain; write the addresses or domains it should match as entries, or leave it out';
    key = lit;
  }
  if (kind === 'network') {
    const n = networkKey(key);
    return n ? { keys: [n] } : 'checks.client-access matches client addresses and ranges only, not host names; list the addresses';
  }
  if (kind === 'address' && key.endsWith('@')) return { keys: [key] };
  if (key.includes('@') || key.startsWith('.') || key.startsWith('[') || key === '<>') return { keys: [key] };
  return { keys: [key, `.${key}`] };
}
