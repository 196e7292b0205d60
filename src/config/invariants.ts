// Refuses configurations that are unsafe even though every value has the right type: the
// incident's mistakes (trusting everyone, trusting a tunnel), contradictions between settings,
// and values that can only be typos. Each problem names the key, the value and the fix.
import { isIPv6 } from 'node:net';
import { inNetwork, isNetworkProblem, parseIp, parseNetwork, readNetwork, type Network } from '../core/net.ts';
import type { ConfigProblem } from './errors.ts';
import { showValue } from './errors.ts';
import { LOCAL_TRUST_ACK, type RawConfig } from './schema.ts';

// A trusted range this wide can only be a mistake: it is how an open relay is made.
const WIDEST_PREFIX = { 4: 8, 6: 32 } as const;

/** The value as written, and the range it means when that reads differently (a mapped form, host bits). */
function shown(text: string, net: Network): string {
  const t = text.trim();
  const same = net.text === t || net.text === `${t}/${net.family === 4 ? 32 : 128}`;
  return same ? showValue(text) : `${showValue(text)} (the range ${net.text})`;
}

// Every range is read by core/net.ts readNetwork, the parser the server matches with, so the
// rules below judge the range the server will use: "::ffff:0.0.0.0/96" is judged as 0.0.0.0/0.
function checkNetworks(list: readonly string[], key: string, what: string, problems: ConfigProblem[]): void {
  list.forEach((text, i) => {
    const path = `${key}[${i}]`;
    const net = readNetwork(text);
    if (isNetworkProblem(net)) {
      // ::/0 and other huge IPv6 ranges also hold the mapped block; their width is the first thing to say.
      const wide = wideIpv6(text);
      problems.push(wide === undefined ? { path, message: net.problem, fix: net.fix } : widthProblem(path, text, wide, 6, what));
      return;
    }
    if (net.prefix < WIDEST_PREFIX[net.family]) problems.push(widthProblem(path, text, net.prefix, net.family, what, net));
  });
}

function widthProblem(path: string, text: string, prefix: number, family: 4 | 6, what: string, net?: Network): ConfigProblem {
  return {
    path,
    message: `${net ? shown(text, net) : showValue(text)} ${prefix === 0 ? 'trusts every address' : `trusts ${family === 4 ? 2 ** (32 - prefix) : 'a vast number of'} addresses`} as ${what}`,
    fix: `list only your own hosts, e.g. ${family === 4 ? '10.0.0.5/32' : '2001:db8::5/128'}`,
  };
}

/** The prefix of an IPv6 range wider than the widest allowed, e.g. 0 for "::/0". */
function wideIpv6(text: string): number | undefined {
  const m = /^\[?([0-9a-f:.]+)\]?\/(0|[1-9][0-9]?)$/i.exec(text.trim());
  return m && isIPv6(m[1]!) && Number(m[2]) < WIDEST_PREFIX[6] ? Number(m[2]) : undefined;
}

const LOOPBACK: readonly Network[] = ['127.0.0.0/8', '::1'].map((t) => parseNetwork(t)!);
const meets = (a: Network, b: Network): boolean => a.family === b.family && inNetwork(b, { ...a, prefix: Math.min(a.prefix, b.prefix) });
const ACK_FIX = `set relay.allowLocalTrust: ${LOCAL_TRUST_ACK} to run with it anyway`;

/**
 * relay.trustedNetworks entries that any local tunnel, port forward or proxy can reach: loopback
 * (127.0.0.0/8, ::1), a listener's own non-wildcard address, or a listener's PROXY sender (its
 * PROXY LOCAL and UNKNOWN connections keep the proxy's address). Refused unless
 * relay.allowLocalTrust acknowledges them; then they are the config's warnings.
 */
export function localTrustProblems(c: RawConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const listeners = Object.entries(c.listeners).filter(([, l]) => l.enabled);
  c.relay.trustedNetworks.forEach((text, i) => {
    const n = parseNetwork(text);
    // Too wide to load at all (checkNetworks says so); one problem per entry is enough.
    if (!n || n.prefix < WIDEST_PREFIX[n.family]) return;
    const path = `relay.trustedNetworks[${i}]`;
    const what = shown(text, n);
    if (LOOPBACK.some((l) => meets(n, l))) {
      out.push({
        path,
        message: `${what} includes loopback (127.0.0.0/8 or ::1): every tunnel, port forward or proxy on this host connects from loopback, so each client it carries may relay without a login (an open relay)`,
        fix: `remove it and let local programs log in on the submission port; or ${ACK_FIX}`,
      });
    }
    for (const [name, l] of listeners) {
      l.proxy.trusted.forEach((p, j) => {
        const pn = parseNetwork(p);
        if (!pn || !meets(n, pn)) return;
        out.push({
          path,
          message: `${what} includes ${showValue(p)}, a PROXY protocol sender of listener "${name}" (listeners.${name}.proxy.trusted[${j}]): its PROXY LOCAL or UNKNOWN connections keep the proxy's address and would relay`,
          fix: `remove the proxy's addresses from relay.trustedNetworks (clients behind it are judged by the address in their PROXY header); or ${ACK_FIX}`,
        });
      });
      const host = parseIp(l.host);
      if (!host || host.bytes.every((b) => b === 0) || LOOPBACK.some((lb) => inNetwork(host, lb)) || !inNetwork(host, n)) continue;
      out.push({
        path,
        message: `${what} includes ${showValue(l.host)}, the address listener "${name}" listens on (listeners.${name}.host): a forwarder, container proxy or tunnel on this host connects from it, so every client it carries may relay`,
        fix: `remove this machine's own addresses from relay.trustedNetworks; or ${ACK_FIX}`,
      });
    }
  });
  return out;
}

const DOMAIN_RE = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export function checkInvariants(c: RawConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  c.domains.forEach((d, i) => {
    if (!DOMAIN_RE.test(d.replace(/\.$/, ''))) {
      problems.push({ path: `domains[${i}]`, message: `${showValue(d)} is not a domain name`, fix: 'write a domain such as example.org' });
    }
  });
  checkNetworks(c.relay.trustedNetworks, 'relay.trustedNetworks', 'a relay network', problems);
  if (c.relay.allowLocalTrust === undefined) problems.push(...localTrustProblems(c));
  if ((c.tls.cert === undefined) !== (c.tls.key === undefined)) {
    const missing = c.tls.cert === undefined ? 'cert' : 'key';
    problems.push({ path: `tls.${missing}`, message: `tls.${missing === 'cert' ? 'key' : 'cert'} is set but tls.${missing} is not`, fix: 'set both tls.cert and tls.key to PEM files, or neither (a self-signed pair is then made)' });
  }
  if (c.tls.acme && (c.tls.cert !== undefined || c.tls.key !== undefined)) {
    problems.push({ path: 'tls.acme', message: 'tls.acme is set together with tls.cert/tls.key: the certificate would have two sources', fix: 'remove tls.cert and tls.key to let the server obtain the certificate, or remove tls.acme to use your files (certbot)' });
  }
  if (c.tls.acme && c.tls.acme.maxRetry < c.tls.acme.retry) {
    problems.push({ path: 'tls.acme.maxRetry', message: `${c.tls.acme.maxRetry} ms is shorter than tls.acme.retry (${c.tls.acme.retry} ms)`, fix: 'make maxRetry at least as long as retry, e.g. retry: 10m, maxRetry: 12h' });
  }
  const ports = new Map<string, string>();
  for (const [name, l] of Object.entries(c.listeners)) {
    if (!l.enabled) continue;
    checkNetworks(l.proxy.trusted, `listeners.${name}.proxy.trusted`, 'a PROXY protocol sender', problems);
    if (l.requireAuth === true && l.auth === false) {
      problems.push({ path: `listeners.${name}.requireAuth`, message: 'requireAuth is true but auth is false, so no client could ever send', fix: `set listeners.${name}.auth to true, or requireAuth to false` });
    }
    if (l.kind === 'submissions' && l.starttls === true) {
      problems.push({ path: `listeners.${name}.starttls`, message: 'a submissions listener already speaks TLS from the first byte', fix: `remove listeners.${name}.starttls` });
    }
    if (l.port !== 0) {
      const key = `${l.host}:${l.port}`;
      const other = ports.get(key);
      if (other) problems.push({ path: `listeners.${name}.port`, message: `${l.port} on ${l.host} is also used by listener "${other}"`, fix: 'give each listener its own port' });
      ports.set(key, name);
    }
  }
  if (c.queue.minBackoff > c.queue.maxBackoff) {
    problems.push({ path: 'queue.minBackoff', message: `${c.queue.minBackoff} ms is longer than queue.maxBackoff (${c.queue.maxBackoff} ms)`, fix: 'make minBackoff no longer than maxBackoff' });
  }
  if (c.store.backend === 'redis' && !c.store.redis.url && !c.store.redis.sentinels && !c.store.redis.cluster) {
    problems.push({ path: 'store.redis.url', message: 'store.backend is "redis" but no Redis address is given', fix: 'set store.redis.url, e.g. redis://127.0.0.1:6379' });
  }
  return problems;
}
