// mynetworks → relay.trustedNetworks, with the incident's trap named instead of copied: a range
// that holds loopback (127.0.0.0/8, ::1, Postfix's default [::ffff:127.0.0.0]/104) or an address
// this server listens on is where every tunnel, port forward and proxy on the host connects from.
// Behind one, every client on the internet was 127.0.0.1 to Postfix, and permit_mynetworks let
// each of them relay. Such ranges are left out of the result and reported as errors.
import { existsSync, readFileSync } from 'node:fs';
import { inNetwork, isNetworkProblem, parseIp, readNetwork } from '../../core/net.ts';
import { coversLoopback, overlaps, privateName, type Network } from '../../doctor/networks.ts';
import { readMap, underRoot } from './maps.ts';
import type { Report } from './report.ts';
import type { PostfixSettings } from './settings.ts';
import type { Service } from './master-cf.ts';

export const TRAP_EXPLANATION =
  'the incident: a tunnel (ssh -R, a port forward, a container proxy, stunnel) on the mail host made every client connect from 127.0.0.1, Postfix found 127.0.0.1 in mynetworks, permit_mynetworks let each of them relay, and the server became an open relay';
export const TRAP_FIX =
  'let users and programs log in (submission port, mailward user add) or, behind a proxy or load balancer, list it in listeners.<name>.proxy.trusted so the PROXY header carries the real client address; only list in relay.trustedNetworks LAN ranges that no forwarder on this host connects from';

export interface TrustedNetworks {
  /** Ranges safe to copy into relay.trustedNetworks. */
  readonly trusted: string[];
  /** permit_mynetworks would have trusted something the result does not. */
  readonly trapped: boolean;
}

/**
 * Reads mynetworks (or what Postfix derives from mynetworks_style when it is unset) and decides
 * range by range. `listenHosts`: the addresses the listeners bind (from inet_interfaces).
 */
export function readMynetworks(s: PostfixSettings, listenHosts: readonly string[], report: Report, used: boolean, svc?: Service): TrustedNetworks {
  const where = s.source('mynetworks', svc);
  if (!s.isSet('mynetworks', svc)) {
    const style = s.get('mynetworks_style', svc) || 'subnet';
    if (used) {
      report.error(
        'mynetworks-default',
        s.source('mynetworks_style', svc),
        `mynetworks is not set, so Postfix trusts mynetworks_style = ${style}: 127.0.0.0/8, [::ffff:127.0.0.0]/104, [::1]/128 and ${style === 'class' ? 'the class A/B/C networks' : style === 'subnet' ? 'the subnets' : 'the addresses'} of this host's interfaces`,
        'nothing trusted: relay.trustedNetworks is empty',
        `${TRAP_EXPLANATION}. Fix: ${TRAP_FIX}`,
      );
    }
    return { trusted: [], trapped: used };
  }
  const trusted: string[] = [];
  const loopback: string[] = [];
  const ownHits: string[] = [];
  let trapped = false;
  const own = listenHosts.map((h) => parseIp(h)).filter((ip) => ip !== undefined && !ip.bytes.every((b) => b === 0));
  // Postfix matches mynetworks left to right and the first match wins, so "!a" before a range
  // that holds a means a is not trusted. relay.trustedNetworks has no exclusions: a later range
  // that overlaps one is left out, so the result never trusts what Postfix did not.
  const excluded: Network[] = [];
  for (const raw of expandPatterns(s.list('mynetworks', svc), s, report, where)) {
    const shown = `mynetworks entry ${raw}`;
    if (raw.startsWith('!')) {
      const x = readNetwork(raw.slice(1));
      if (!isNetworkProblem(x)) excluded.push(x);
      report.untranslated('mynetworks-exclusion', where, shown, 'not copied: relay.trustedNetworks has no exclusions', 'ranges after it that hold the excluded addresses are left out too (the result trusts less, never more); list the remaining parts by hand if they are wanted');
      continue;
    }
    const n = readNetwork(raw);
    if (!isNetworkProblem(n) && excluded.some((x) => overlaps(n, x))) {
      report.untranslated('mynetworks-excluded-overlap', where, shown, 'not copied: an earlier "!" entry excludes part of it, and relay.trustedNetworks cannot', 'list the parts of the range that Postfix trusted (without the excluded addresses) in relay.trustedNetworks by hand, or let those clients log in');
      continue;
    }
    if (isNetworkProblem(n)) {
      report.untranslated('mynetworks-unreadable', where, shown, `not copied: ${n.problem}`, n.fix);
      continue;
    }
    const widest = n.family === 4 ? 8 : 32;
    if (n.prefix < widest) {
      trapped = trapped || used;
      report.error('mynetworks-too-wide', where, shown, 'not copied', `${raw} trusts ${n.prefix === 0 ? 'every address' : 'a huge range'}: Postfix was an open relay for it. List only your own hosts, e.g. 10.0.0.5/32`);
      continue;
    }
    if (coversLoopback(n)) {
      trapped = trapped || used;
      loopback.push(n.text === raw ? raw : `${raw} (${n.text})`);
      continue;
    }
    const self = own.find((ip) => inNetwork(ip!, n));
    if (self) {
      trapped = trapped || used;
      ownHits.push(raw);
      continue;
    }
    const priv = privateName(n);
    if (priv && DOCKER.some((d) => overlaps(n, d))) {
      report.untranslated('mynetworks-container', where, `${shown} (${priv})`, 'copied into relay.trustedNetworks', `container runtimes forward published ports from this range (docker-proxy connects from 172.17.0.1): if a port of this server is published, remove the range and use logins or PROXY protocol instead`);
    }
    trusted.push(n.text);
    report.mapped(where, shown, `relay.trustedNetworks: ${n.text}${used ? '' : ' (not used by permit_mynetworks in the Postfix config; copied anyway?)'}`);
  }
  if (loopback.length > 0) {
    report.error('mynetworks-loopback', where, `mynetworks = ${s.get('mynetworks', svc)}: ${loopback.join(', ')} ${loopback.length > 1 ? 'hold' : 'holds'} loopback${used ? ', and permit_mynetworks trusts it' : ''}`, 'not copied: relay.trustedNetworks does not hold loopback', `${TRAP_EXPLANATION}. Fix: ${TRAP_FIX}`);
  }
  if (ownHits.length > 0) {
    report.error('mynetworks-own-address', where, `mynetworks entries ${ownHits.join(', ')} hold an address this server listens on (inet_interfaces)`, 'not copied into relay.trustedNetworks', `a forwarder, container proxy or tunnel on this host connects from its own address, so every client it carries would relay (${TRAP_EXPLANATION}). Fix: ${TRAP_FIX}`);
  }
  return { trusted: used ? trusted : [], trapped };
}

const DOCKER: readonly Network[] = ['172.16.0.0/12'].map((t) => readNetwork(t) as Network);

/** mynetworks may name files ("/etc/postfix/network_table") or tables; files are read as more patterns. */
function expandPatterns(list: readonly string[], s: PostfixSettings, report: Report, where: string): string[] {
  const out: string[] = [];
  for (const p of list) {
    if (p.startsWith('/')) {
      const file = underRoot(s.root, p);
      if (existsSync(file)) out.push(...readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean).flatMap((l) => l.split(/[\s,]+/)));
      else report.untranslated('mynetworks-file', where, `mynetworks file ${p}`, 'not read: the file is not there', `copy it next to main.cf's folder and import again`);
    } else if (/^[a-z]+:/.test(p) && !p.startsWith('[')) {
      // A table in a match list matches when the client address is found; the result is not
      // used. cidr: keys are ranges, hash:-style keys addresses: both become patterns.
      const m = readMap(p, s.root);
      if (m.kind === 'cidr' || m.kind === 'table') {
        out.push(...m.entries.map((e) => e.key));
        report.info('mynetworks-table', where, `mynetworks table ${p} (${m.entries.length} entries)`, 'its keys are read as mynetworks entries (below)');
      } else report.untranslated('mynetworks-table', where, `mynetworks table ${p}`, `not read${m.kind === 'unreadable' ? `: ${m.why}` : ''}`, 'list the ranges in relay.trustedNetworks by hand (never loopback or this host\'s own addresses)');
    } else out.push(p);
  }
  return out;
}
