// check_policy_service targets Mailward has built in: postgrey (greylisting) and policyd-spf
// (SPF), recognised by their conventions — postgrey listens on inet:127.0.0.1:10023 or
// unix:postgrey/socket; policyd-spf runs as a spawn(8) service named policyd-spf or
// policy-spf whose argv is policyd-spf (Debian's postfix-policyd-spf-python/-perl).
import type { PostfixSettings } from './settings.ts';

export type PolicyKind = 'greylist' | 'spf' | 'unknown';

export function policyServiceKind(s: PostfixSettings, target: string): PolicyKind {
  const t = target.split(',')[0]!.trim().toLowerCase();
  const text = `${t} ${spawnArgv(s, t)}`.trim();
  if (/postgrey|greylist|sqlgrey|:10023$/.test(text)) return 'greylist';
  if (/spf/.test(text)) return 'spf';
  return 'unknown';
}

/** The argv of the master.cf spawn service behind "unix:private/NAME" (or "private/NAME"). */
function spawnArgv(s: PostfixSettings, target: string): string {
  const name = /(?:^|:)private\/([^,\s}]+)/.exec(target)?.[1];
  if (!name) return '';
  const svc = s.services.find((x) => x.name.toLowerCase() === name && x.command === 'spawn');
  if (!svc) return '';
  s.useService(svc);
  return svc.args.join(' ').toLowerCase();
}
