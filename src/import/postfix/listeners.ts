// master.cf's smtpd/postscreen services on inet → Mailward listeners: port 25 is mx, 587
// submission, 465 (or smtpd_tls_wrappermode) submissions; inet_interfaces gives the address.
// PROXY protocol (smtpd_/postscreen_upstream_proxy_protocol) has no peer list in Postfix — any
// client that reaches the port may claim any address — so it becomes an error and an empty
// proxy.trusted (no header is believed) until the operator lists the proxy.
import type { Service } from './master-cf.ts';
import { serviceAddress } from './master-cf.ts';
import type { Report } from './report.ts';
import type { PostfixSettings } from './settings.ts';
import { TRAP_FIX } from './networks.ts';

export interface ListenerPlan {
  readonly name: string;
  readonly service: Service | undefined;
  readonly kind: 'mx' | 'submission' | 'submissions';
  readonly host: string;
  readonly port: number;
  readonly settings: Record<string, unknown>;
}

/** The address(es) inet_interfaces names, as listener hosts ("all" is 0.0.0.0). */
export function listenHosts(s: PostfixSettings, report: Report): string[] {
  const list = s.list('inet_interfaces').map((h) => h.replace(/^\[|\]$/g, ''));
  if (list.length === 0 || list.includes('all')) return ['0.0.0.0'];
  const hosts = list.map((h) => (h === 'loopback-only' || h === 'localhost' ? '127.0.0.1' : h));
  if (hosts.length > 1) report.info('interfaces', s.source('inet_interfaces'), `inet_interfaces = ${list.join(', ')}`, `listeners bind ${hosts[0]} only (a Mailward listener has one address; add a listener per further address)`);
  return hosts;
}

export function readListeners(s: PostfixSettings, report: Report): ListenerPlan[] {
  const hosts = listenHosts(s, report);
  const smtpd = s.services.filter((v) => v.type === 'inet' && (v.command === 'smtpd' || v.command === 'postscreen'));
  const out: ListenerPlan[] = [];
  if (s.services.length === 0) {
    out.push({ name: 'mx', service: undefined, kind: 'mx', host: hosts[0]!, port: 25, settings: {} });
    report.info('no-master-cf', 'master.cf', 'no master.cf', 'one mx listener on port 25, as Debian\'s default master.cf');
  }
  for (const svc of smtpd) {
    const addr = serviceAddress(svc.name);
    if (!addr) {
      report.untranslated('service-address', svc.source, `service ${svc.name}`, 'no listener', 'add a listener with the port by hand');
      continue;
    }
    const host = addr.host === '' ? hosts[0]! : addr.host === 'localhost' ? '127.0.0.1' : addr.host;
    if (svc.overrides.has('content_filter') && s.get('content_filter', svc) === '') {
      report.untranslated('reinjection', svc.source, `service ${svc.name} (the content filter's return path)`, 'no listener: Mailward filters content in its own pipeline (checks spam, virus)', 'remove the filter (e.g. Amavis) or keep it as a milter-free step before Mailward; place "spam" and "virus" in pipeline.data');
      continue;
    }
    s.useService(svc);
    const wrapper = s.yes('smtpd_tls_wrappermode', svc) || addr.port === 465;
    const kind = wrapper ? 'submissions' : addr.port === 587 ? 'submission' : 'mx';
    const name = uniqueName(out, svc.name === 'smtp' ? 'mx' : /^[a-z][a-z0-9-]*$/.test(svc.name) ? svc.name : `${kind}-${addr.port}`);
    const settings: Record<string, unknown> = {};
    if (kind === 'mx' && s.yes('smtpd_sasl_auth_enable', svc)) settings.auth = true;
    if (kind !== 'mx' && s.isSet('smtpd_sasl_auth_enable', svc) && !s.yes('smtpd_sasl_auth_enable', svc)) settings.auth = false;
    if (/^(encrypt|verify|secure)$/.test(s.get('smtpd_tls_security_level', svc)) && kind !== 'submissions') settings.requireTls = true;
    proxyProtocol(s, svc, name, report);
    out.push({ name, service: svc, kind, host, port: addr.port, settings });
    report.mapped(svc.source, `${svc.name} ${svc.type} ... ${svc.command}${svc.overrides.size ? ` (${[...svc.overrides.keys()].map((k) => `-o ${k}`).join(' ')})` : ''}`, `listeners.${name}: ${kind} on ${host}:${addr.port}${Object.keys(settings).length ? ` ${JSON.stringify(settings)}` : ''}`);
    if (svc.command === 'postscreen') {
      report.info('postscreen', svc.source, 'postscreen', `listeners.${name} is a plain mx listener; postscreen's DNSBL sites are listed above (not translated: place them in checks.dnsbl by hand), its greet pause is listeners.${name}.greetingDelay`);
    }
  }
  return out;
}

function uniqueName(out: readonly ListenerPlan[], base: string): string {
  let n = base;
  for (let i = 2; out.some((l) => l.name === n); i++) n = `${base}-${i}`;
  return n;
}

function proxyProtocol(s: PostfixSettings, svc: Service, name: string, report: Report): void {
  const param = svc.command === 'postscreen' ? 'postscreen_upstream_proxy_protocol' : 'smtpd_upstream_proxy_protocol';
  const v = s.get(param, svc);
  if (!v) return;
  report.error(
    'proxy-without-peers',
    s.source(param, svc),
    `${param} = ${v} (service ${svc.name})`,
    `listeners.${name}.proxy.trusted: [] — no PROXY header is believed until you list the proxy`,
    `Postfix believes a PROXY header from anyone who can reach this port, so any client could claim to be 127.0.0.1 or a trusted network and relay. Fix: list only the proxy's own address in listeners.${name}.proxy.trusted, e.g. [10.0.0.5]; ${TRAP_FIX}`,
  );
}
