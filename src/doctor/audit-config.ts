// The part of `mailward doctor` that reads only the config (and this machine's interface
// addresses): the incident's mistake in each of its shapes — loopback, a private range, a proxy
// or this host itself trusted as a relay network; a listener reached through a forwarder without
// PROXY protocol; AUTH or submission set up unsafely; outbound mail without a guard or TLS, or
// with the guard placed where a permit skips it.
import type { Config, ListenerConfig } from '../config/load.ts';
import { entryCheck } from '../config/schema.ts';
import type { Finding } from './finding.ts';
import { auditGuardPlacement } from './audit-pipeline.ts';
import { coversLoopback, isLoopbackHost, isPrivateHost, ownAddresses, ownAddressIn, parseRange, privateName, overlaps, rangeSize, type InterfaceMap, type Network } from './networks.ts';

export interface ConfigAuditOptions {
  /** This machine's interfaces (default: os.networkInterfaces()). */
  readonly interfaces?: InterfaceMap;
}

const q = (s: string): string => JSON.stringify(s);

export function auditConfig(config: Config, opts: ConfigAuditOptions = {}): Finding[] {
  const findings: Finding[] = [];
  auditRelayNetworks(config, opts, findings);
  for (const l of config.listeners) auditListener(l, findings);
  auditTls(config, findings);
  auditOutbound(config, findings);
  findings.push(...auditGuardPlacement(config));
  auditQueue(config, findings);
  auditAdmin(config, findings);
  return findings;
}

function auditRelayNetworks(config: Config, opts: ConfigAuditOptions, out: Finding[]): void {
  const own = ownAddresses(opts.interfaces);
  config.relay.trustedNetworks.forEach((text, i) => {
    const setting = `relay.trustedNetworks[${i}]`;
    const n = parseRange(text);
    if (!n) return; // load refuses malformed ranges; nothing to add here
    mappedForm(text, n, setting, out);
    const before = out.length;
    if (coversLoopback(n)) {
      out.push({
        id: 'relay-trusts-loopback',
        severity: 'error',
        setting,
        message: `${q(text)} includes loopback: a tunnel, proxy or port forwarder on this host connects from loopback, so every client it carries may relay — how a tunnelled Postfix became an open relay`,
        fix: 'remove it; let local programs log in on the submission port instead',
      });
    }
    for (const l of config.listeners) {
      l.proxyTrusted.forEach((p, j) => {
        const pn = parseRange(p);
        if (!pn || !overlaps(n, pn)) return;
        out.push({
          id: 'relay-trusts-proxy',
          severity: 'error',
          setting,
          message: `${q(text)} includes ${q(p)}, a PROXY protocol sender of listener "${l.name}" (listeners.${l.name}.proxy.trusted[${j}]): its PROXY LOCAL or UNKNOWN connections carry no client address, keep the proxy's, and would relay`,
          fix: "remove the proxy's address from relay.trustedNetworks; clients behind it are judged by the address in their PROXY header",
        });
      });
    }
    const mine = ownAddressIn(n, own);
    if (mine) {
      out.push({
        id: 'relay-trusts-own-host',
        severity: 'error',
        setting,
        message: `${q(text)} includes ${mine.address}, an address of this machine (${mine.interface}): a forwarder, container proxy or tunnel on this host connects from it, so every client it carries may relay`,
        fix: "remove this machine's addresses; list only the hosts that send through you, each as /32",
      });
    }
    if (out.length > before) return;
    const priv = privateName(n);
    if (priv) {
      out.push({
        id: 'relay-trusts-private',
        severity: 'warning',
        setting,
        message: `${q(text)} is a ${priv} range: behind NAT, a VPN or a container network many clients can share one such address, and each of them may relay without a login`,
        fix: `list only the hosts that must send without a login, each as /32 (e.g. ${n.family === 4 ? '192.168.1.10/32' : 'fd00::10/128'}), or have them log in`,
      });
      return;
    }
    if (n.prefix < (n.family === 4 ? 24 : 64)) {
      out.push({
        id: 'relay-trusts-wide',
        severity: 'warning',
        setting,
        message: `${q(text)} trusts ${rangeSize(n)} addresses to relay without a login`,
        fix: 'list only the hosts that must send without a login, each as /32, or have them log in',
      });
    }
  });
}

/** A range written in IPv4-mapped IPv6 form (::ffff:10.0.0.0/104) is the IPv4 range it carries; say so, since other tools read it as IPv6. */
function mappedForm(text: string, n: Network, setting: string, out: Finding[]): void {
  if (n.family !== 4 || !text.includes(':')) return;
  out.push({
    id: 'network-mapped-form',
    severity: 'warning',
    setting,
    message: `${q(text)} is written in IPv4-mapped IPv6 form; Mailward reads it as the IPv4 range ${n.text} (and matches IPv4 clients against it), while other tools and readers may take it for IPv6`,
    fix: `write ${n.text}`,
  });
}

function auditListener(l: ListenerConfig, out: Finding[]): void {
  const key = `listeners.${l.name}`;
  l.proxyTrusted.forEach((p, j) => {
    const n = parseRange(p);
    if (n) mappedForm(p, n, `${key}.proxy.trusted[${j}]`, out);
    if (!n || n.prefix >= (n.family === 4 ? 24 : 64)) return;
    out.push({
      id: 'proxy-trust-wide',
      severity: 'warning',
      setting: `${key}.proxy.trusted[${j}]`,
      message: `${q(p)} lets ${rangeSize(n)} addresses send a PROXY header, and so claim any client address they like`,
      fix: `list only the proxy hosts themselves, each as /32 (e.g. ${n.family === 4 ? '10.0.0.5/32' : '2001:db8::5/128'})`,
    });
  });
  if (l.proxyTrusted.length === 0) auditForwarded(l, key, out);
  if (l.auth && !l.implicitTls && !l.starttls) {
    out.push({
      id: 'auth-without-tls',
      severity: 'error',
      setting: `${key}.auth`,
      message: `listener "${l.name}" offers AUTH but has no TLS (starttls is off and it is not a submissions listener): passwords would cross the network readable, so Mailward never offers AUTH here and no one can log in`,
      fix: `remove ${key}.starttls (it defaults to on), use kind: submissions, or set ${key}.auth to false`,
    });
  }
  if ((l.kind === 'submission' || l.kind === 'submissions') && !l.requireAuth) {
    // RFC 6409 §4.3: an MSA must by default refuse MAIL from a session that has not authenticated.
    out.push({
      id: 'submission-without-auth',
      severity: 'error',
      setting: `${key}.requireAuth`,
      message: `listener "${l.name}" (kind ${l.kind}) accepts mail without a login; RFC 6409 §4.3 requires authentication for submission`,
      fix: `remove ${key}.requireAuth and ${key}.auth (both default to on for ${l.kind}) or set them to true`,
    });
  }
}

/**
 * A listener on loopback or a private address is often reached through a tunnel, port forward or
 * load balancer; without PROXY protocol every client then has the forwarder's address (the
 * incident's 127.0.0.1). For mx that is a warning: the servers of the world cannot reach such an
 * address directly. A submission listener there is often legitimate (webmail on this host, office
 * clients on the LAN), so it is a note that says what to check.
 */
function auditForwarded(l: ListenerConfig, key: string, out: Finding[]): void {
  const loop = isLoopbackHost(l.host);
  if (!loop && !isPrivateHost(l.host)) return;
  // RFC 3986 §3.2.2: an IPv6 address is bracketed before ":port".
  const hostPort = `${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`;
  const where = loop ? hostPort : `${hostPort}, a private address,`;
  if (l.kind === 'mx') {
    out.push({
      id: 'listener-behind-forwarder',
      severity: 'warning',
      setting: `${key}.host`,
      message: loop
        ? `the mx listener "${l.name}" listens on ${where} without PROXY protocol: other servers can reach it only through a tunnel or forwarder, and then every client has the forwarder's address`
        : `the mx listener "${l.name}" listens on ${where} without PROXY protocol: if a load balancer, port forward or tunnel delivers to it, every client has the forwarder's address`,
      fix: `make the forwarder send a PROXY protocol header (e.g. HAProxy send-proxy-v2) and list its address in ${key}.proxy.trusted, or listen on the public address`,
    });
    return;
  }
  const direct = loop ? 'only programs on this host (e.g. webmail) connect to it' : 'clients on that network connect to it directly';
  out.push({
    id: 'listener-behind-forwarder',
    severity: 'info',
    setting: `${key}.host`,
    message: `the ${l.kind} listener "${l.name}" listens on ${where} without PROXY protocol: fine if ${direct}; but if a tunnel, port forward or proxy delivers remote clients to it, they all share the forwarder's address, so one password guesser blocks every user's login, rate limits count all users as one client, and the log never shows the real client`,
    fix: `check what connects to ${hostPort}; if a forwarder does, make it send a PROXY protocol header (e.g. HAProxy send-proxy-v2) and list its address in ${key}.proxy.trusted`,
  });
}

function auditAcme(config: Config, out: Finding[]): void {
  const a = config.tls.acme;
  if (!a) return;
  if (!a.hostnames.includes(config.hostname)) {
    out.push({ id: 'acme-hostname-missing', severity: 'warning', setting: 'tls.acme.hostnames', message: `tls.acme.hostnames (${a.hostnames.join(', ')}) does not list this server's hostname ${JSON.stringify(config.hostname)}: the certificate will not name the host that the EHLO greeting and the MX record give`, fix: `add ${config.hostname} to tls.acme.hostnames` });
  }
  const [key, listener, standard] = a.challenge === 'tls-alpn-01' ? (['alpn', a.alpn, 443] as const) : (['http', a.http, 80] as const);
  if (listener.port !== standard) {
    out.push({ id: `acme-${key}-port`, severity: 'info', setting: `tls.acme.${key}.port`, message: `the ${a.challenge} listener is on port ${listener.port}, but the CA always connects to port ${standard} of each name`, fix: `forward port ${standard} to ${listener.port} (firewall or load balancer), or set tls.acme.${key}.port to ${standard}` });
  }
}

function auditTls(config: Config, out: Finding[]): void {
  auditAcme(config, out);
  if (config.tls.cert || config.tls.acme) return; // the file itself is read by the machine audit
  const exposed = config.listeners.filter((l) => !isLoopbackHost(l.host) && (l.starttls || l.implicitTls));
  if (exposed.length === 0) return;
  out.push({
    id: 'tls-self-signed',
    severity: 'warning',
    setting: 'tls.cert',
    message: `no tls.cert and tls.key are set, so ${exposed.map((l) => `"${l.name}"`).join(', ')} use a self-signed certificate that mail clients and other servers cannot verify`,
    fix: "set tls.cert and tls.key to your certificate chain and key, e.g. from Let's Encrypt",
  });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Names of the checks placed in any stage list of any listener. */
export function placedChecks(config: Config, stage?: string): Set<string> {
  const names = new Set<string>();
  for (const l of config.listeners) {
    for (const [at, list] of Object.entries(l.pipeline)) {
      if (stage === undefined || at === stage) for (const e of list) names.add(entryCheck(e));
    }
  }
  return names;
}

/** The smarthosts of `delivery`, read defensively: the section may be missing or of an older shape. */
export function smarthostsOf(config: Config): Array<{ name: string; host: string; port: unknown; tls: unknown }> {
  const d: unknown = (config as { delivery?: unknown }).delivery;
  if (!isObj(d) || !isObj(d.smarthosts)) return [];
  return Object.entries(d.smarthosts).flatMap(([name, s]) => (isObj(s) ? [{ name, host: typeof s.host === 'string' ? s.host : '?', port: s.port, tls: s.tls }] : []));
}

function guardQuotaLimit(config: Config): number | undefined {
  const g = config.checks['outbound-guard'];
  if (!isObj(g) || !isObj(g.quota)) return undefined;
  return typeof g.quota.limit === 'number' ? g.quota.limit : undefined;
}

function auditOutbound(config: Config, out: Finding[]): void {
  const smarthosts = smarthostsOf(config);
  for (const s of smarthosts) {
    if (s.tls === 'implicit' || s.tls === 'starttls') continue;
    const where = `${s.host}${typeof s.port === 'number' ? `:${s.port}` : ''}`;
    out.push({
      id: 'smarthost-without-tls',
      severity: 'error',
      setting: `delivery.smarthosts.${s.name}.tls`,
      message: `smarthost "${s.name}" (${where}) is used without TLS (tls is ${s.tls === undefined ? 'not set' : JSON.stringify(s.tls)}): the login password and every message would cross the network readable`,
      fix: `set delivery.smarthosts.${s.name}.tls to starttls (port 587) or implicit (port 465)`,
    });
  }
  if (smarthosts.length === 0) return;
  const names = smarthosts.map((s) => `"${s.name}"`).join(', ');
  // The breakers and the quota are the outbound-guard check's (docs/decisions/0007-outbound-guard.md).
  // At RCPT, where it counts and judges recipients (at DATA it only refuses while the aggregate is open).
  if (!placedChecks(config, 'rcpt').has('outbound-guard')) {
    out.push({
      id: 'smarthost-without-guard',
      severity: 'error',
      setting: 'pipeline.rcpt',
      message: `smarthost ${names} is configured but the outbound-guard check is placed in no check list: no breaker or quota stops a stolen login or a trusted client sending through it until the provider suspends the account`,
      fix: "place it after recipient (e.g. pipeline.rcpt: [recipient, outbound-guard, rate-limit]) and set checks.outbound-guard.quota.limit to the provider's quota",
    });
    return;
  }
  if (guardQuotaLimit(config) === undefined) {
    out.push({
      id: 'outbound-quota-unset',
      severity: 'warning',
      setting: 'checks.outbound-guard.quota.limit',
      message: `smarthost ${names} is configured but no outbound quota mirrors its sending limit: the breaker cannot hold mail before the provider's own limit is reached`,
      fix: "set checks.outbound-guard.quota.limit to the provider's quota, e.g. 54000 (per quota.window, 24h by default)",
    });
  }
}

function auditQueue(config: Config, out: Finding[]): void {
  if (config.queue.fsync) return;
  out.push({
    id: 'queue-fsync-off',
    severity: 'warning',
    setting: 'queue.fsync',
    message: 'queue.fsync is false: a 250 no longer means the message is on disk, and a crash or power cut loses mail already accepted',
    fix: 'remove queue.fsync (it defaults to true); it is meant only for throw-away test setups',
  });
}

/** The admin section, read defensively (it is plugged into the schema separately). */
export function adminOf(config: Config): { enabled: boolean; host: string; port: number; tokenFile?: string } | undefined {
  const a: unknown = (config as { admin?: unknown }).admin;
  if (!isObj(a) || a.enabled !== true) return undefined;
  return {
    enabled: true,
    host: typeof a.host === 'string' ? a.host : '127.0.0.1',
    port: typeof a.port === 'number' ? a.port : 8025,
    ...(typeof a.tokenFile === 'string' ? { tokenFile: a.tokenFile } : {}),
  };
}

function auditAdmin(config: Config, out: Finding[]): void {
  const a = adminOf(config);
  if (!a || isLoopbackHost(a.host)) return;
  out.push({
    id: 'admin-not-loopback',
    severity: 'warning',
    setting: 'admin.host',
    message: `the admin API and dashboard listen on ${a.host}:${a.port}, beyond this host, protected only by the token and without TLS`,
    fix: 'set admin.host to 127.0.0.1 and reach it through an SSH tunnel or a reverse proxy with TLS',
  });
}
