// Refuses configurations that are unsafe even though every value has the right type: the
// incident's mistakes (trusting everyone, trusting a tunnel), contradictions between settings,
// and values that can only be typos. Each problem names the key, the value and the fix.
import { isIP } from 'node:net';
import type { ConfigProblem } from './errors.ts';
import { showValue } from './errors.ts';
import type { RawConfig } from './schema.ts';

/** Parses "10.0.0.5", "10.0.0.0/8", "2001:db8::/32"; undefined when malformed. */
export function parseCidr(text: string): { address: string; prefix: number; family: 4 | 6 } | undefined {
  const [addr, bits, extra] = text.trim().split('/');
  if (extra !== undefined || addr === undefined) return undefined;
  const fam = isIP(addr);
  if (fam !== 4 && fam !== 6) return undefined;
  const max = fam === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address: addr, prefix, family: fam };
}

// A trusted range this wide can only be a mistake: it is how an open relay is made.
const WIDEST_PREFIX = { 4: 8, 6: 32 } as const;

function checkNetworks(list: readonly string[], key: string, what: string, problems: ConfigProblem[]): void {
  list.forEach((text, i) => {
    const path = `${key}[${i}]`;
    const net = parseCidr(text);
    if (!net) {
      problems.push({ path, message: `${showValue(text)} is not an IP address or CIDR range`, fix: 'write an address such as 10.0.0.5 or a range such as 10.0.0.0/24 or 2001:db8::/64' });
      return;
    }
    if (net.prefix < WIDEST_PREFIX[net.family]) {
      problems.push({
        path,
        message: `${showValue(text)} ${net.prefix === 0 ? 'trusts every address' : `trusts ${net.family === 4 ? 2 ** (32 - net.prefix) : 'a vast number of'} addresses`} as ${what}`,
        fix: `list only your own hosts, e.g. ${net.family === 4 ? '10.0.0.5/32' : '2001:db8::5/128'}`,
      });
    }
  });
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
  if ((c.tls.cert === undefined) !== (c.tls.key === undefined)) {
    const missing = c.tls.cert === undefined ? 'cert' : 'key';
    problems.push({ path: `tls.${missing}`, message: `tls.${missing === 'cert' ? 'key' : 'cert'} is set but tls.${missing} is not`, fix: 'set both tls.cert and tls.key to PEM files, or neither (a self-signed pair is then made)' });
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
